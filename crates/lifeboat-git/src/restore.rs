//! Restoring repositories from a snapshot: fetch its chain of bundles in
//! order into a new repository, set every branch and tag to the recorded
//! id and HEAD to the recorded branch, then check refs and connectivity.
//! Or do that in a scratch repository and push everything to a new remote.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use lifeboat_store::secrecy::SecretString;
use lifeboat_store::{FullAccess, Index, ManifestItem, NoProgress, Repository, Snapshot};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::git::{parse_refs, Git};
use crate::SOURCE;

/// A repository as a snapshot records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRepo {
    pub name: String,
    pub url: String,
    pub head: Option<String>,
    pub refs: BTreeMap<String, String>,
    /// Bundle item names, oldest first.
    pub chain: Vec<String>,
}

/// The repositories of a snapshot, each checked as untrusted input (see
/// [`check_repo`]); two names that a case-folding file system would put in
/// one directory are refused.
pub fn repositories(snap: &Snapshot) -> Result<Vec<SnapshotRepo>> {
    let repos = parse_repositories(snap)?;
    let mut seen = BTreeMap::new();
    for r in &repos {
        check_repo(r)?;
        if let Some(other) = seen.insert(lifeboat_paths::collision_key(&r.name), &r.name) {
            return Err(Error::Refused(format!(
                "the snapshot's git facts name two repositories {} and {} that would restore \
                 into one directory: refusing this snapshot's git repositories",
                lifeboat_paths::shown(other),
                lifeboat_paths::shown(&r.name)
            )));
        }
    }
    Ok(repos)
}

/// Whether `name` is a ref a restore may set: under `refs/`, and what
/// `git check-ref-format` accepts (no `..`, `@{`, control characters,
/// spaces or `~^:?*[\`; no component starting with `.` or ending in `.lock`).
fn valid_ref(name: &str) -> bool {
    name.starts_with("refs/")
        && !name.ends_with('/')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("@{")
        && !name.contains("//")
        && !name
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c))
        && name
            .split('/')
            .all(|c| !c.starts_with('.') && !c.ends_with(".lock"))
}

fn valid_oid(oid: &str) -> bool {
    matches!(oid.len(), 40 | 64) && oid.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A repository's record from a snapshot is untrusted: its name becomes a
/// directory (one plain path component), its refs and ids go to
/// `git update-ref --stdin`, its URL to `git remote add`.
pub fn check_repo(r: &SnapshotRepo) -> Result<()> {
    let refuse = |what: String| {
        Error::Refused(format!(
            "the snapshot's git facts are not a valid repository record: {what}; refusing to \
             restore it (was the snapshot forged?)"
        ))
    };
    lifeboat_paths::component(&r.name).map_err(|e| refuse(format!("repository name {e}")))?;
    for (name, oid) in &r.refs {
        if !valid_ref(name) {
            return Err(refuse(format!(
                "{} has a ref {} that git would not accept",
                lifeboat_paths::shown(&r.name),
                lifeboat_paths::shown(name)
            )));
        }
        if !valid_oid(oid) {
            return Err(refuse(format!(
                "ref {} of {} has the object id {}, not 40 or 64 hex digits",
                lifeboat_paths::shown(name),
                lifeboat_paths::shown(&r.name),
                lifeboat_paths::shown(oid)
            )));
        }
    }
    if let Some(h) = &r.head {
        if !valid_ref(h) {
            return Err(refuse(format!(
                "{} has HEAD {}, not a ref",
                lifeboat_paths::shown(&r.name),
                lifeboat_paths::shown(h)
            )));
        }
    }
    if r.url.starts_with('-') || r.url.chars().any(char::is_control) {
        return Err(refuse(format!(
            "{} has a URL that starts with `-` or holds control characters",
            lifeboat_paths::shown(&r.name)
        )));
    }
    Ok(())
}

/// Whether a URL from the snapshot may become the restored repository's
/// `origin`: a plain https, http, ssh, git or file URL, an scp-like
/// `host:path` or an absolute path, with no credentials and no git
/// transport helper (`ext::`, `fd::`: a forged snapshot would have later
/// fetches run a command or go where it says).
fn plain_remote(url: &str) -> bool {
    if url.is_empty() || url.contains("***@") || url.contains("::") || url.starts_with('-') {
        return false;
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or("");
            let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
            ["https", "http", "ssh", "git", "file"].contains(&scheme)
                && !userinfo.is_some_and(|u| u.contains(':'))
                && !(matches!(scheme, "https" | "http") && userinfo.is_some())
        }
        None => {
            url.starts_with('/')
                || url
                    .split_once(':')
                    .is_some_and(|(h, _)| !h.is_empty() && !h.contains('/'))
        }
    }
}

fn parse_repositories(snap: &Snapshot) -> Result<Vec<SnapshotRepo>> {
    let Some(summary) = snap.sources.get(SOURCE) else {
        return Err(Error::Invalid(
            "this snapshot has no git repositories (was it taken with --source git?)".into(),
        ));
    };
    let repos = summary
        .facts
        .get("repos")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::Refused("the snapshot's git facts have no repository list".into()))?;
    repos
        .iter()
        .map(|(name, r)| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
            let refs = r
                .get("refs")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let chain = r
                .get("chain")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Ok(SnapshotRepo {
                name: name.clone(),
                url: s("url").unwrap_or_default(),
                head: s("head"),
                refs,
                chain,
            })
        })
        .collect()
}

/// What a restore produced.
#[derive(Debug, Clone, Serialize)]
pub struct GitRestoreReport {
    pub name: String,
    pub path: PathBuf,
    pub head: Option<String>,
    /// Branches and tags set, all checked against the snapshot.
    pub refs: usize,
    pub bundles: usize,
    /// With `--push-to`: the remote (refs read back with ls-remote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_to: Option<String>,
}

/// Create `dir` (and its parents, which are the user's choice) without
/// following a link at `dir` itself, and without special mode bits.
fn create_target(dir: &Path) -> Result<()> {
    let what = || format!("creating {}", dir.display());
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io(what(), e))?;
    }
    lifeboat_paths::create_one_dir(dir).map_err(|e| Error::io(what(), e))
}

fn is_empty_dir(p: &Path) -> Result<bool> {
    match fs::read_dir(p) {
        Ok(mut d) => Ok(d.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(format!("reading {}", p.display()), e)),
    }
}

/// Restore `r` into a new repository at `dir` (a working clone, or bare).
pub fn restore_to_dir(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    r: &SnapshotRepo,
    dir: &Path,
    bare: bool,
) -> Result<GitRestoreReport> {
    // Callers join the name onto their target; check here too, so no
    // caller can forget.
    check_repo(r)?;
    lifeboat_paths::refuse_link(dir).map_err(|e| Error::io("checking the target", e))?;
    if !is_empty_dir(dir)? {
        return Err(Error::Invalid(format!(
            "{} is not empty: restore a repository into a new or empty directory",
            dir.display()
        )));
    }
    create_target(dir)?;
    let git = Git::default().at(dir);
    if bare {
        git.run(&["init", "--bare", "--quiet"])?;
    } else {
        git.run(&["init", "--quiet"])?;
    }
    let scratch = if bare {
        dir.to_path_buf()
    } else {
        dir.join(".git")
    };
    for (seq, name) in r.chain.iter().enumerate() {
        let item = items
            .iter()
            .find(|i| i.source == SOURCE && &i.name == name)
            .ok_or_else(|| {
                Error::Mismatch(format!(
                    "the snapshot's manifest lacks bundle {name} of repository {}",
                    r.name
                ))
            })?;
        let mut tmp = tempfile::Builder::new()
            .prefix("lifeboat-bundle-")
            .tempfile_in(&scratch)
            .map_err(|e| Error::io("creating a temporary bundle file", e))?;
        repo.restore_item(index, item, tmp.as_file_mut(), &NoProgress)?;
        let path = tmp.path().to_string_lossy().into_owned();
        let (ok, stderr) = git.try_run(&["bundle", "verify", "--quiet", &path])?;
        if !ok {
            return Err(Error::Mismatch(format!(
                "bundle {name} does not apply: {stderr}"
            )));
        }
        let spec = format!("+refs/*:refs/lifeboat-restore/{seq}/*");
        git.run(&[
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            &path,
            &spec,
        ])?;
    }
    let mut cmds = String::new();
    for (name, oid) in &r.refs {
        cmds.push_str(&format!("update {name} {oid}\n"));
    }
    let temp = git.run(&[
        "for-each-ref",
        "--format=delete %(refname)",
        "refs/lifeboat-restore",
    ])?;
    cmds.push_str(&temp);
    if !cmds.is_empty() {
        // The ids passed check_repo; one its bundles do not hold makes
        // git refuse the update: the snapshot does not fit together.
        git.run_with_input(&["update-ref", "--stdin"], &cmds)
            .map_err(|e| match e {
                Error::Git { stderr, .. } => Error::Mismatch(format!(
                    "the snapshot's refs of {} name objects its bundles do not hold: {stderr}",
                    r.name
                )),
                e => e,
            })?;
    }
    if let Some(h) = r.head.as_ref().filter(|h| r.refs.contains_key(*h)) {
        git.run(&["symbolic-ref", "HEAD", h])?;
        if !bare {
            git.run(&["reset", "--hard", "--quiet"])?;
        }
    }
    if plain_remote(&r.url) {
        let _ = git.try_run(&["remote", "add", "origin", &r.url])?;
    } else if !r.url.is_empty() {
        tracing::warn!(
            "{}: not setting origin to the snapshot's URL {} (not a plain https, ssh, git or \
             file URL without credentials); add the remote yourself",
            lifeboat_paths::shown(&r.name),
            lifeboat_paths::shown(&crate::git::redact_url(&r.url))
        );
    }
    let got = git.refs()?;
    if got != r.refs {
        return Err(Error::Mismatch(format!(
            "restored {} has {} refs, the snapshot records {}: {}",
            r.name,
            got.len(),
            r.refs.len(),
            first_difference(&r.refs, &got)
        )));
    }
    let (ok, stderr) = git.try_run(&["fsck", "--connectivity-only", "--no-progress"])?;
    if !ok {
        return Err(Error::Mismatch(format!(
            "restored {} is missing objects: {stderr}",
            r.name
        )));
    }
    Ok(GitRestoreReport {
        name: r.name.clone(),
        path: dir.to_path_buf(),
        head: r.head.clone(),
        refs: got.len(),
        bundles: r.chain.len(),
        pushed_to: None,
    })
}

fn first_difference(want: &BTreeMap<String, String>, got: &BTreeMap<String, String>) -> String {
    for (k, v) in want {
        match got.get(k) {
            None => return format!("{k} is missing"),
            Some(g) if g != v => return format!("{k} is {g}, expected {v}"),
            _ => {}
        }
    }
    got.keys()
        .find(|k| !want.contains_key(*k))
        .map(|k| format!("{k} is extra"))
        .unwrap_or_default()
}

/// Restore `r` in a scratch repository and push every branch and tag to
/// `url` (meant to be a new, empty remote: nothing is forced), then read
/// the remote's refs back and compare.
pub fn push_to(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    r: &SnapshotRepo,
    url: &str,
    token: Option<SecretString>,
    ssh_command: Option<String>,
) -> Result<GitRestoreReport> {
    let scratch = tempfile::Builder::new()
        .prefix("lifeboat-git-")
        .tempdir()
        .map_err(|e| Error::io("creating a scratch directory", e))?;
    let local = scratch.path().join("repo.git");
    let mut report = restore_to_dir(repo, index, items, r, &local, true)?;
    let git = Git {
        dir: Some(local.clone()),
        token,
        ssh_command,
    };
    git.run(&[
        "push",
        "--quiet",
        url,
        "refs/heads/*:refs/heads/*",
        "refs/tags/*:refs/tags/*",
    ])?;
    let remote = parse_refs(&git.run(&["ls-remote", "--heads", "--tags", url])?);
    if remote != r.refs {
        return Err(Error::Mismatch(format!(
            "after the push, {} differs from the snapshot: {}",
            crate::git::redact_url(url),
            first_difference(&r.refs, &remote)
        )));
    }
    report.pushed_to = Some(crate::git::redact_url(url));
    report.path = PathBuf::new();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> SnapshotRepo {
        SnapshotRepo {
            name: name.into(),
            url: "https://example.com/a.git".into(),
            head: Some("refs/heads/main".into()),
            refs: [("refs/heads/main".to_string(), "a".repeat(40))].into(),
            chain: vec![],
        }
    }

    #[test]
    fn forged_repository_records_are_refused() {
        assert!(check_repo(&repo("app")).is_ok());
        for name in ["../../x", "/tmp/x", "", "..", "a/b", "a\nb"] {
            let e = check_repo(&repo(name)).unwrap_err().to_string();
            assert!(e.contains("repository name"), "{name:?}: {e}");
        }
        for bad_ref in [
            "HEAD",
            "refs/heads/a\nupdate refs/heads/b",
            "refs/heads/../x",
            "refs/heads/a b",
            "refs/heads/x.lock",
        ] {
            let mut r = repo("app");
            r.refs.insert(bad_ref.into(), "b".repeat(40));
            assert!(check_repo(&r).is_err(), "{bad_ref:?}");
        }
        let mut r = repo("app");
        r.refs.insert("refs/tags/v1".into(), "zz\nupdate".into());
        assert!(check_repo(&r).is_err());
        let mut r = repo("app");
        for ok in [
            "https://github.com/org/repo.git",
            "ssh://git@github.com/org/repo.git",
            "git@github.com:org/repo.git",
            "/srv/git/repo.git",
            "file:///srv/git/repo.git",
        ] {
            assert!(plain_remote(ok), "{ok}");
        }
        for bad in [
            "ext::sh -c touch% /tmp/pwned",
            "fd::17",
            "https://user:secret@host/repo.git",
            "https://token@host/repo.git",
            "ssh://user:pw@host/repo.git",
            "gopher://host/repo",
            "relative/path",
            "-oProxyCommand=x",
        ] {
            assert!(!plain_remote(bad), "{bad}");
        }
        r.url = "--upload-pack=touch /tmp/pwned".into();
        assert!(check_repo(&r).is_err());
    }
}
