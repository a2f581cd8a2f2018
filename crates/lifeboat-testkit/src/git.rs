//! The real `git`, for tests that build repositories: fixed author and
//! committer, panics with git's stderr on failure.

use std::path::Path;
use std::process::Command;

/// `git -C dir ARGS`; its stdout.
#[track_caller]
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Dr Ana")
        .env("GIT_AUTHOR_EMAIL", "ana@clinic.example")
        .env("GIT_COMMITTER_NAME", "Dr Ana")
        .env("GIT_COMMITTER_EMAIL", "ana@clinic.example")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Branches and tags with their ids, one `REF OID` per line.
pub fn refs(dir: &Path) -> String {
    git(
        dir,
        &[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads",
            "refs/tags",
        ],
    )
}
