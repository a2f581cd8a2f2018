//! Exit codes, so scripts can tell failures apart. Documented in README.md.

use lifeboat_store::{Classify, Error as StoreError, ErrorClass};

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

pub fn damaged(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Exit {
        code: Code::Damaged,
        message: message.into(),
        hint: Some(
            "restore what you can from an older snapshot; see docs/FORMAT.md to salvage by hand",
        ),
    })
}

/// The exit code of each class of error (README.md, "Exit codes"): the
/// one place where library errors become exit statuses.
pub fn code_of(class: ErrorClass) -> Code {
    match class {
        ErrorClass::Usage => Code::Usage,
        ErrorClass::Source => Code::Source,
        ErrorClass::Damaged | ErrorClass::Refused => Code::Damaged,
        ErrorClass::Key => Code::Key,
        ErrorClass::Locked => Code::Locked,
        ErrorClass::Storage => Code::Storage,
        ErrorClass::NeedsALook => Code::Warning,
        ErrorClass::Local | ErrorClass::Internal => Code::Failure,
    }
}

/// The class and hint of a library error of lifeboat, if `e` is one.
fn classified(e: &(dyn std::error::Error + 'static)) -> Option<(ErrorClass, Option<&'static str>)> {
    macro_rules! first_of {
        ($($t:ty),+) => {
            $(if let Some(x) = e.downcast_ref::<$t>() {
                return Some((x.class(), x.hint()));
            })+
        };
    }
    first_of!(
        lifeboat_ops::Error,
        StoreError,
        lifeboat_mysql::Error,
        lifeboat_objects::Error,
        lifeboat_render::Error,
        lifeboat_git::Error
    );
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        if lifeboat_paths::is_refusal(io) {
            return Some((ErrorClass::Refused, None));
        }
    }
    None
}

/// The exit code and hint for an error chain: the first cause that is an
/// [`Exit`] or a classified library error decides.
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
        if let Some((class, hint)) = classified(cause) {
            return (code_of(class), hint);
        }
    }
    (Code::Failure, None)
}

/// The error and its causes on one line.
pub fn render(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every class from every crate lands on the README's exit code, the
    /// class survives being wrapped (in the ops error, in anyhow context),
    /// and an internal error is 1, never 2.
    #[test]
    fn each_class_of_each_crate_maps_to_its_exit_code() {
        use lifeboat_ops::SourceKind;
        let io = || std::io::Error::other("disk full");
        let cases: Vec<(anyhow::Error, Code)> = vec![
            (StoreError::Invalid("bad".into()).into(), Code::Usage),
            (StoreError::NotFound("no item".into()).into(), Code::Usage),
            (StoreError::Source("gone".into()).into(), Code::Source),
            (
                StoreError::Damaged {
                    what: "blob".into(),
                    detail: "bad".into(),
                }
                .into(),
                Code::Damaged,
            ),
            (
                StoreError::WrongKey { detail: "x".into() }.into(),
                Code::Key,
            ),
            (StoreError::Locked("x".into()).into(), Code::Locked),
            (
                StoreError::Backend(lifeboat_store::BackendError {
                    kind: lifeboat_store::BackendErrorKind::Other,
                    op: "read",
                    path: "config".into(),
                    message: "x".into(),
                    local: true,
                })
                .into(),
                Code::Storage,
            ),
            (
                StoreError::Internal("workers stopped".into()).into(),
                Code::Failure,
            ),
            (
                lifeboat_mysql::Error::Invalid("x".into()).into(),
                Code::Usage,
            ),
            (
                lifeboat_mysql::Error::Target("not empty".into()).into(),
                Code::Usage,
            ),
            (
                lifeboat_mysql::Error::Wire {
                    what: "x".into(),
                    why: "y".into(),
                }
                .into(),
                Code::Source,
            ),
            (
                lifeboat_mysql::Error::Replay("view v".into()).into(),
                Code::Source,
            ),
            (
                lifeboat_mysql::Error::Mismatch("t".into()).into(),
                Code::Damaged,
            ),
            (
                lifeboat_mysql::Error::Refused("other db".into()).into(),
                Code::Damaged,
            ),
            (
                lifeboat_mysql::Error::Internal("panicked".into()).into(),
                Code::Failure,
            ),
            (
                lifeboat_mysql::Error::Local("sql file".into()).into(),
                Code::Failure,
            ),
            (
                lifeboat_objects::Error::S3 {
                    what: "x".into(),
                    detail: "y".into(),
                }
                .into(),
                Code::Source,
            ),
            (
                lifeboat_objects::Error::Invalid("x".into()).into(),
                Code::Usage,
            ),
            (
                lifeboat_objects::Error::Refused("../x".into()).into(),
                Code::Damaged,
            ),
            (
                lifeboat_objects::Error::Mismatch("x".into()).into(),
                Code::Damaged,
            ),
            (
                lifeboat_objects::Error::Internal("x".into()).into(),
                Code::Failure,
            ),
            (
                lifeboat_objects::Error::Io {
                    path: "/x".into(),
                    error: io(),
                }
                .into(),
                Code::Failure,
            ),
            (
                lifeboat_render::Error::Unauthorized {
                    path: "/services".into(),
                }
                .into(),
                Code::Source,
            ),
            (
                lifeboat_render::Error::Refused("a/b".into()).into(),
                Code::Damaged,
            ),
            (
                lifeboat_render::Error::Internal("x".into()).into(),
                Code::Failure,
            ),
            (
                lifeboat_git::Error::Git {
                    command: "clone".into(),
                    stderr: "x".into(),
                }
                .into(),
                Code::Source,
            ),
            (
                lifeboat_git::Error::Refused("../x".into()).into(),
                Code::Damaged,
            ),
            (lifeboat_git::Error::Invalid("x".into()).into(), Code::Usage),
            (lifeboat_ops::Error::Invalid("x".into()).into(), Code::Usage),
            (
                lifeboat_ops::Error::AllSourcesFailed(vec![]).into(),
                Code::Source,
            ),
            (
                lifeboat_ops::Error::Source {
                    kind: SourceKind::Mysql,
                    error: Box::new(lifeboat_ops::Error::Store(StoreError::Locked("x".into()))),
                }
                .into(),
                Code::Locked,
            ),
            (
                lifeboat_ops::Error::Mysql(lifeboat_mysql::Error::Store(StoreError::Internal(
                    "x".into(),
                )))
                .into(),
                Code::Failure,
            ),
            (
                anyhow::Error::new(StoreError::Internal("x".into())).context("restoring"),
                Code::Failure,
            ),
            (
                anyhow::Error::new(std::io::Error::other(lifeboat_paths_refusal())),
                Code::Damaged,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(classify(&err).0, want, "{err:#}");
        }
    }

    fn lifeboat_paths_refusal() -> Box<dyn std::error::Error + Send + Sync> {
        // The only public way to a refusal: ask for a directory where a
        // link is.
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(dir.path(), &link).expect("symlink");
        let e = lifeboat_paths::create_one_dir(&link).expect_err("a link is refused");
        assert!(lifeboat_paths::is_refusal(&e));
        e.into_inner().expect("an inner error")
    }
}
