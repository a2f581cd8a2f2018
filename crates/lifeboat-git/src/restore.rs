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

/// The repositories of a snapshot.
pub fn repositories(snap: &Snapshot) -> Result<Vec<SnapshotRepo>> {
    let Some(summary) = snap.sources.get(SOURCE) else {
        return Err(Error::Invalid(
            "this snapshot has no git repositories (was it taken with --source git?)".into(),
        ));
    };
    let repos = summary
        .facts
        .get("repos")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Error::Mismatch("the snapshot's git facts have no repository list".into())
        })?;
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
    if !is_empty_dir(dir)? {
        return Err(Error::Invalid(format!(
            "{} is not empty: restore a repository into a new or empty directory",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
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
        git.run_with_input(&["update-ref", "--stdin"], &cmds)?;
    }
    if let Some(h) = r.head.as_ref().filter(|h| r.refs.contains_key(*h)) {
        git.run(&["symbolic-ref", "HEAD", h])?;
        if !bare {
            git.run(&["reset", "--hard", "--quiet"])?;
        }
    }
    if !r.url.is_empty() && !r.url.contains("***@") {
        let _ = git.try_run(&["remote", "add", "origin", &r.url])?;
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
