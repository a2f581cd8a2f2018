//! Backing up repositories: a bare mirror per repository on the backup
//! host (branches and tags only), fetched every run; when its refs and HEAD
//! are those of the previous snapshot, the previous bundles are carried
//! over by reference (nothing stored); otherwise a bundle of what is new
//! since the previous tips (or of everything, for the first run and every
//! `max_chain` runs) is made, checked with `git bundle verify`, and stored.
//!
//! The chain of bundles each snapshot needs, with their manifest entries,
//! is kept in the source's state file; the ref list and HEAD are in the
//! snapshot's facts. Restore fetches the chain in order and sets the refs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use lifeboat_store::secrecy::SecretString;
use lifeboat_store::{Access, BackupSession, ManifestItem, NoProgress, Repository};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::git::{redact_url, Git};
use crate::SOURCE;

/// Item kind of a bundle.
pub const BUNDLE_KIND: &str = "git-bundle";
const STATE_VERSION: u32 = 1;

/// One repository to back up.
#[derive(Clone)]
pub struct GitRepoOptions {
    /// HTTPS URL, SSH URL (`ssh://`, `git@host:path`) or a local path.
    pub url: String,
    /// Unique name in the snapshot (default: the URL's last component).
    pub name: String,
    /// Token for HTTPS (GitHub: a fine-grained token with Contents: read).
    pub token: Option<SecretString>,
    /// `GIT_SSH_COMMAND` for SSH remotes, e.g. `ssh -i KEY`.
    pub ssh_command: Option<String>,
    /// Where the bare mirror lives on the backup host.
    pub mirror_dir: PathBuf,
    /// Incremental bundles before a full one.
    pub max_chain: usize,
}

impl std::fmt::Debug for GitRepoOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRepoOptions")
            .field("url", &redact_url(&self.url))
            .field("name", &self.name)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("mirror_dir", &self.mirror_dir)
            .finish_non_exhaustive()
    }
}

impl GitRepoOptions {
    /// Defaults for `url`, with its mirror under `mirror_root`.
    pub fn new(url: &str, mirror_root: &Path) -> Self {
        let name = default_name(url);
        let tag = hex::encode(&Sha256::digest(url.as_bytes())[..4]);
        GitRepoOptions {
            url: url.to_string(),
            mirror_dir: mirror_root.join(format!("{name}-{tag}.git")),
            name,
            token: None,
            ssh_command: None,
            max_chain: 30,
        }
    }

    fn git(&self) -> Git {
        Git {
            dir: None,
            token: self.token.clone(),
            ssh_command: self.ssh_command.clone(),
        }
    }
}

/// `clinic` from `https://github.com/org/clinic.git` or `git@host:org/clinic`.
pub fn default_name(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url);
    let name = last.strip_suffix(".git").unwrap_or(last);
    if name.is_empty() {
        "repo".to_string()
    } else {
        name.to_string()
    }
}

/// What the next run needs to know about one repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RepoState {
    pub url: String,
    pub head: Option<String>,
    pub refs: BTreeMap<String, String>,
    /// The bundles, oldest first; fetching them in order gives every object.
    pub chain: Vec<ManifestItem>,
    pub next_seq: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub version: u32,
    pub repos: BTreeMap<String, RepoState>,
}

/// What a backup did for one repository.
#[derive(Debug, Clone, Serialize)]
pub struct RepoReport {
    pub name: String,
    pub head: Option<String>,
    pub refs: usize,
    /// Refs and HEAD as in the previous snapshot: nothing stored.
    pub unchanged: bool,
    /// Size of the bundle stored this run (0 when none).
    pub bundle_bytes: u64,
    /// Whether that bundle is a full one.
    pub full: bool,
    /// Bundles a restore of this snapshot fetches.
    pub chain: usize,
}

/// The newest readable state of this source.
fn previous<A: Access>(repo: &Repository<A>) -> Result<State> {
    let (snapshots, _) = repo.snapshots()?;
    for snap in snapshots.iter().rev() {
        let Some(summary) = snap.snapshot.sources.get(SOURCE) else {
            continue;
        };
        if summary.state.is_none() {
            continue;
        }
        match repo.source_state(&snap.snapshot, SOURCE) {
            Ok(Some(raw)) => match serde_json::from_slice::<State>(&raw) {
                Ok(s) if s.version == STATE_VERSION => return Ok(s),
                _ => tracing::warn!(
                    "git: the state of snapshot {} is unreadable: storing full bundles",
                    snap.id.short()
                ),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(
                "git: the state of snapshot {} is unreadable ({e}): storing full bundles",
                snap.id.short()
            ),
        }
        break;
    }
    Ok(State {
        version: STATE_VERSION,
        ..Default::default()
    })
}

/// Back up every repository into `session`. Any failure is an error for
/// the whole source (the caller decides what happens to the session).
pub fn backup<A: Access>(
    session: &mut BackupSession<A>,
    repo: &Repository<A>,
    repos: &[GitRepoOptions],
) -> Result<Vec<RepoReport>> {
    let mut names = BTreeSet::new();
    for r in repos {
        // Compared case-folded: a restore onto macOS or Windows would put
        // `App` and `app` in one directory.
        if !names.insert(lifeboat_paths::collision_key(&r.name)) {
            return Err(Error::Invalid(format!(
                "two [[git]] repositories are named {:?} (names are compared ignoring case): \
                 give one a different name",
                r.name
            )));
        }
        // A restore makes a directory of this name: it must be one.
        lifeboat_paths::component(&r.name).map_err(|e| {
            Error::Invalid(format!(
                "[[git]] name {e}; set name = \"...\" to a plain directory name"
            ))
        })?;
    }
    let prev = previous(repo)?;
    let mut state = State {
        version: STATE_VERSION,
        repos: BTreeMap::new(),
    };
    let mut reports = Vec::new();
    let mut facts = serde_json::Map::new();
    for r in repos {
        let (rs, report) = backup_one(session, r, prev.repos.get(&r.name))?;
        facts.insert(
            r.name.clone(),
            json!({
                "url": rs.url,
                "head": rs.head,
                "refs": rs.refs,
                "chain": rs.chain.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
                "unchanged": report.unchanged,
            }),
        );
        state.repos.insert(r.name.clone(), rs);
        reports.push(report);
    }
    session.set_source_facts(SOURCE, json!({ "repos": facts }));
    let raw = serde_json::to_vec(&state)
        .map_err(|e| Error::Invalid(format!("serializing the git state: {e}")))?;
    session.set_source_state(SOURCE, &raw)?;
    Ok(reports)
}

/// Create or update the bare mirror; returns its HEAD.
fn fetch(r: &GitRepoOptions) -> Result<Option<String>> {
    if let Some(rest) = r.url.split_once("://").map(|(_, rest)| rest) {
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') && authority.split('@').next().is_some_and(|u| u.contains(':')) {
            return Err(Error::Invalid(format!(
                "[[git]] url for {:?} holds a password: put the token in `token = \"${{GITHUB_TOKEN}}\"` instead",
                r.name
            )));
        }
    }
    let dir = &r.mirror_dir;
    let git = r.git().at(dir);
    if !dir.join("HEAD").exists() {
        lifeboat_store::create_private_dir(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        git.run(&["init", "--bare", "--quiet"])?;
        git.run(&[
            "config",
            "--replace-all",
            "remote.origin.fetch",
            "+refs/heads/*:refs/heads/*",
        ])?;
        git.run(&[
            "config",
            "--add",
            "remote.origin.fetch",
            "+refs/tags/*:refs/tags/*",
        ])?;
        git.run(&["config", "gc.auto", "0"])?;
    }
    git.run(&["config", "remote.origin.url", &r.url])?;
    git.run(&[
        "fetch",
        "--prune",
        "--quiet",
        "--no-write-fetch-head",
        "origin",
    ])?;
    let out = git.run(&["ls-remote", "--symref", "origin", "HEAD"])?;
    let head = out.lines().find_map(|l| {
        l.strip_prefix("ref: ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    });
    if let Some(h) = &head {
        git.run(&["symbolic-ref", "HEAD", h])?;
    }
    Ok(head)
}

fn backup_one<A: Access>(
    session: &mut BackupSession<A>,
    r: &GitRepoOptions,
    prev: Option<&RepoState>,
) -> Result<(RepoState, RepoReport)> {
    let head = fetch(r)?;
    let refs = r.git().at(&r.mirror_dir).refs()?;
    let mut report = RepoReport {
        name: r.name.clone(),
        head: head.clone(),
        refs: refs.len(),
        unchanged: false,
        bundle_bytes: 0,
        full: false,
        chain: 0,
    };
    let (chain, next_seq) = store_changes(session, r, prev, &head, &refs, &mut report)?;
    report.chain = chain.len();
    let state = RepoState {
        url: redact_url(&r.url),
        head,
        refs,
        chain,
        next_seq,
    };
    Ok((state, report))
}

/// Store what the snapshot needs beyond the previous chain; returns the
/// new chain and the next bundle number.
fn store_changes<A: Access>(
    session: &mut BackupSession<A>,
    r: &GitRepoOptions,
    prev: Option<&RepoState>,
    head: &Option<String>,
    refs: &BTreeMap<String, String>,
    report: &mut RepoReport,
) -> Result<(Vec<ManifestItem>, u64)> {
    let git = r.git().at(&r.mirror_dir);
    // Carry the previous chain when its blobs are still there.
    let carried: Option<Vec<ManifestItem>> = prev.and_then(|p| {
        p.chain
            .iter()
            .all(|i| session.knows_blobs(&i.blobs))
            .then(|| p.chain.clone())
    });
    let next_seq = prev.map(|p| p.next_seq).unwrap_or(1);
    if let (Some(p), Some(chain)) = (prev, &carried) {
        if &p.refs == refs && &p.head == head {
            report.unchanged = true;
            return Ok((carry(session, chain)?, next_seq));
        }
    }
    if refs.is_empty() {
        return Ok((Vec::new(), next_seq));
    }
    // Incremental on top of the previous tips that the mirror still has.
    let mut basis: Vec<String> = Vec::new();
    let mut chain = Vec::new();
    if let (Some(p), Some(old)) = (prev, &carried) {
        if !old.is_empty() && old.len() < r.max_chain {
            let tips: BTreeSet<&String> = p.refs.values().collect();
            for oid in tips {
                let (ok, _) = git.try_run(&["cat-file", "-e", oid])?;
                if ok {
                    basis.push(format!("^{oid}"));
                }
            }
            if !basis.is_empty() {
                chain = carry(session, old)?;
            }
        }
    }
    report.full = basis.is_empty();
    let tmp = tempfile::Builder::new()
        .prefix("lifeboat-bundle-")
        .tempfile_in(&r.mirror_dir)
        .map_err(|e| Error::io("creating a temporary bundle file", e))?;
    let path = tmp.path().to_string_lossy().into_owned();
    let mut args = vec!["bundle", "create", "--quiet", path.as_str(), "--all"];
    args.extend(basis.iter().map(String::as_str));
    let (ok, stderr) = git.try_run(&args)?;
    if !ok {
        if stderr.contains("empty bundle") && !report.full {
            // Refs moved, no new objects (a branch deleted, a lightweight
            // tag on an old commit): the chain already holds everything.
            return Ok((chain, next_seq));
        }
        return Err(Error::Git {
            command: "bundle create".into(),
            stderr,
        });
    }
    let (ok, stderr) = git.try_run(&["bundle", "verify", "--quiet", &path])?;
    if !ok {
        return Err(Error::Mismatch(format!(
            "git bundle verify rejected the new bundle of {}: {stderr}",
            r.name
        )));
    }
    let name = format!("{}/bundle-{next_seq:06}", r.name);
    let mut file =
        fs::File::open(tmp.path()).map_err(|e| Error::io("reading the new bundle", e))?;
    let mut item = session.item(SOURCE, &name, BUNDLE_KIND, &NoProgress)?;
    std::io::copy(&mut file, &mut item).map_err(|e| Error::io("storing the bundle", e))?;
    let stored = item.finish(json!({
        "repository": r.name,
        "seq": next_seq,
        "full": report.full,
        "prerequisites": basis.len(),
        "refs": refs.len(),
        "head": head,
    }))?;
    report.bundle_bytes = stored.size;
    chain.push(stored);
    Ok((chain, next_seq + 1))
}

fn carry<A: Access>(
    session: &mut BackupSession<A>,
    chain: &[ManifestItem],
) -> Result<Vec<ManifestItem>> {
    chain
        .iter()
        .map(|i| Ok(session.carry_item(i.clone())?))
        .collect()
}
