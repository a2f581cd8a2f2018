//! Getting a Render snapshot back out: read it from the store, write `.env`
//! files and secret files (0600), export a Blueprint, or put the variables
//! into a (staging) service through the API after showing the change.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use lifeboat_store::{FullAccess, Index, ManifestItem, NoProgress, Repository};
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::Client;
use crate::backup::{ENV_GROUP_KIND, SERVICE_KIND};
use crate::error::{Error, Result};
use crate::model::{service_env, EnvGroup, EnvVar, RenderSnapshot, SecretFile};
use crate::SOURCE;

/// Read the Render items of a snapshot (each checked against its SHA-256).
pub fn load(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
) -> Result<RenderSnapshot> {
    let mut snap = RenderSnapshot::default();
    for item in items.iter().filter(|i| i.source == SOURCE) {
        let mut buf = Vec::with_capacity(item.size as usize);
        repo.restore_item(index, item, &mut buf, &NoProgress)?;
        let bad = |e: serde_json::Error| {
            Error::Mismatch(format!("item {} is not a Render record: {e}", item.name))
        };
        match item.kind.as_str() {
            SERVICE_KIND => snap
                .services
                .push(serde_json::from_slice(&buf).map_err(bad)?),
            ENV_GROUP_KIND => snap
                .env_groups
                .push(serde_json::from_slice(&buf).map_err(bad)?),
            _ => {}
        }
    }
    if snap.services.is_empty() && snap.env_groups.is_empty() {
        return Err(Error::Invalid(
            "this snapshot has no Render items (was it taken with --source render?)".into(),
        ));
    }
    Ok(snap)
}

/// What `write_env_dir` wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnvDirReport {
    /// Files written (env files and secret files).
    pub files: Vec<PathBuf>,
    /// Variables written, over all env files.
    pub env_vars: u64,
    /// Secret files written.
    pub secret_files: u64,
}

/// A file name from a Render name: no path separators, no `..`.
fn safe_name(name: &str) -> Result<&str> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.contains('\0')
    {
        return Err(Error::Invalid(format!(
            "{name:?} cannot be used as a file name; restore it with --render-yaml or --to-service"
        )));
    }
    Ok(name)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let what = || format!("writing {}", path.display());
    let mut f = opts.open(path).map_err(|e| Error::io(what(), e))?;
    // An existing file keeps its mode on open: make sure it is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(what(), e))?;
    }
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(what(), e))
}

fn private_dir(path: &Path) -> Result<()> {
    lifeboat_store::create_private_dir(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))
}

/// Write `DIR/NAME.env` for every service and `DIR/env-group.NAME.env` for
/// every group (mode 0600), and their secret files under
/// `DIR/NAME.secret-files/`. Each env file is read back with a dotenv
/// parser and compared with the snapshot before this returns.
pub fn write_env_dir(snap: &RenderSnapshot, dir: &Path, force: bool) -> Result<EnvDirReport> {
    if dir.exists()
        && fs::read_dir(dir)
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
            .next()
            .is_some()
        && !force
    {
        return Err(Error::Invalid(format!(
            "{} is not empty; pass --force to write into it",
            dir.display()
        )));
    }
    private_dir(dir)?;
    let mut report = EnvDirReport::default();
    let mut sets: Vec<(String, &[EnvVar], &[SecretFile])> = Vec::new();
    for s in &snap.services {
        sets.push((
            safe_name(&s.name)?.to_string(),
            &s.env_vars,
            &s.secret_files,
        ));
    }
    for g in &snap.env_groups {
        sets.push((
            format!("env-group.{}", safe_name(&g.name)?),
            &g.env_vars,
            &g.secret_files,
        ));
    }
    for (base, vars, files) in sets {
        let env = dir.join(format!("{base}.env"));
        write_private(&env, crate::dotenv::format(vars)?.as_bytes())?;
        let back = crate::dotenv::read(&env)?;
        let want: Vec<(String, String)> = vars
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect();
        if back != want {
            return Err(Error::Mismatch(format!(
                "{} does not read back as the snapshot's variables",
                env.display()
            )));
        }
        report.env_vars += vars.len() as u64;
        report.files.push(env);
        if !files.is_empty() {
            let fdir = dir.join(format!("{base}.secret-files"));
            private_dir(&fdir)?;
            for f in files {
                let path = fdir.join(safe_name(&f.name)?);
                write_private(&path, f.content.as_bytes())?;
                let back = fs::read(&path).map_err(|e| Error::io("reading back", e))?;
                if back != f.content.as_bytes() {
                    return Err(Error::Mismatch(format!(
                        "{} does not read back as written",
                        path.display()
                    )));
                }
                report.secret_files += 1;
                report.files.push(path);
            }
        }
    }
    Ok(report)
}

/// A YAML scalar: JSON strings are valid YAML double-quoted scalars.
fn q(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn setting<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    Some(cur).filter(|v| !v.is_null())
}

fn setting_str(v: &Value, path: &[&str]) -> Option<String> {
    setting(v, path).and_then(Value::as_str).map(str::to_string)
}

/// A Render Blueprint (`render.yaml`) that recreates the services and env
/// groups. Values are never written: every variable is `sync: false`, so
/// the Dashboard asks for it on creation (fill them from `--to-env-dir`).
/// Secret files have no Blueprint field and are listed in a comment.
pub fn blueprint(snap: &RenderSnapshot) -> String {
    let mut y = String::new();
    y.push_str("# Render Blueprint exported by lifeboat from a snapshot.\n");
    y.push_str("# Secret values are not in this file (sync: false): take them from\n");
    y.push_str("# `lifeboat restore SNAPSHOT --source render --to-env-dir DIR`.\n");
    y.push_str("services:\n");
    for s in &snap.services {
        let st = &s.settings;
        let details = |p: &[&str]| {
            let mut full = vec!["serviceDetails"];
            full.extend_from_slice(p);
            setting_str(st, &full)
        };
        let kind = match s.kind.as_str() {
            "web_service" => "web",
            "static_site" => "web",
            "private_service" => "pserv",
            "background_worker" => "worker",
            "cron_job" => "cron",
            other => other,
        };
        y.push_str(&format!("  - type: {kind}\n    name: {}\n", q(&s.name)));
        let runtime = if s.kind == "static_site" {
            Some("static".to_string())
        } else {
            details(&["runtime"]).or_else(|| details(&["env"]))
        };
        if let Some(r) = runtime {
            y.push_str(&format!("    runtime: {}\n", q(&r)));
        }
        for (key, value) in [
            ("repo", setting_str(st, &["repo"])),
            ("branch", setting_str(st, &["branch"])),
            ("rootDir", setting_str(st, &["rootDir"])),
            ("plan", details(&["plan"])),
            ("region", details(&["region"])),
            (
                "buildCommand",
                details(&["buildCommand"])
                    .or_else(|| details(&["envSpecificDetails", "buildCommand"])),
            ),
            (
                "startCommand",
                details(&["envSpecificDetails", "startCommand"]),
            ),
            (
                "dockerfilePath",
                details(&["envSpecificDetails", "dockerfilePath"]),
            ),
            (
                "dockerContext",
                details(&["envSpecificDetails", "dockerContext"]),
            ),
            (
                "dockerCommand",
                details(&["envSpecificDetails", "dockerCommand"]),
            ),
            ("healthCheckPath", details(&["healthCheckPath"])),
            ("staticPublishPath", details(&["publishPath"])),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                y.push_str(&format!("    {key}: {}\n", q(&v)));
            }
        }
        if let Some(a) = setting_str(st, &["autoDeploy"]) {
            y.push_str(&format!("    autoDeploy: {}\n", a == "yes"));
        }
        if let Some(n) = setting(st, &["serviceDetails", "numInstances"]).and_then(Value::as_u64) {
            y.push_str(&format!("    numInstances: {n}\n"));
        }
        let domains: Vec<&str> = s
            .custom_domains
            .iter()
            .filter_map(|d| d.get("name").and_then(Value::as_str))
            .collect();
        if !domains.is_empty() {
            y.push_str("    domains:\n");
            for d in domains {
                y.push_str(&format!("      - {}\n", q(d)));
            }
        }
        if !s.routes.is_empty() {
            y.push_str("    routes:\n");
            for r in &s.routes {
                let f = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
                y.push_str(&format!(
                    "      - type: {}\n        source: {}\n        destination: {}\n",
                    q(f("type")),
                    q(f("source")),
                    q(f("destination"))
                ));
            }
        }
        if !s.headers.is_empty() {
            y.push_str("    headers:\n");
            for h in &s.headers {
                let f = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or_default();
                y.push_str(&format!(
                    "      - path: {}\n        name: {}\n        value: {}\n",
                    q(f("path")),
                    q(f("name")),
                    q(f("value"))
                ));
            }
        }
        if !s.env_vars.is_empty() || !s.env_groups.is_empty() {
            y.push_str("    envVars:\n");
            for v in &s.env_vars {
                y.push_str(&format!(
                    "      - key: {}\n        sync: false\n",
                    q(&v.key)
                ));
            }
            for g in &s.env_groups {
                y.push_str(&format!("      - fromGroup: {}\n", q(g)));
            }
        }
        if !s.secret_files.is_empty() {
            let names: Vec<&str> = s.secret_files.iter().map(|f| f.name.as_str()).collect();
            y.push_str(&format!(
                "    # secret files to add in the Dashboard: {}\n",
                names.join(", ")
            ));
        }
    }
    if !snap.env_groups.is_empty() {
        y.push_str("envVarGroups:\n");
        for g in &snap.env_groups {
            y.push_str(&format!("  - name: {}\n", q(&g.name)));
            if !g.env_vars.is_empty() {
                y.push_str("    envVars:\n");
                for v in &g.env_vars {
                    y.push_str(&format!(
                        "      - key: {}\n        sync: false\n",
                        q(&v.key)
                    ));
                }
            }
        }
    }
    y
}

/// The change `push_env` would make to a service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnvPlan {
    /// The target service's name and id.
    pub service: String,
    pub service_id: String,
    pub env_vars: crate::diff::Delta,
    pub secret_files: crate::diff::Delta,
    /// Whether it was applied (and read back equal).
    pub applied: bool,
}

impl EnvPlan {
    pub fn is_empty(&self) -> bool {
        self.env_vars.is_empty() && self.secret_files.is_empty()
    }
}

fn delta_of<T>(
    current: &[T],
    wanted: &[T],
    name: impl Fn(&T) -> &str,
    value: impl Fn(&T) -> &str,
) -> crate::diff::Delta {
    let cur: BTreeMap<&str, &str> = current.iter().map(|x| (name(x), value(x))).collect();
    let want: BTreeMap<&str, &str> = wanted.iter().map(|x| (name(x), value(x))).collect();
    let mut d = crate::diff::Delta::default();
    for (k, v) in &want {
        match cur.get(k) {
            None => d.added.push(k.to_string()),
            Some(c) if c != v => d.changed.push(k.to_string()),
            _ => {}
        }
    }
    d.removed = cur
        .keys()
        .filter(|k| !want.contains_key(*k))
        .map(|k| k.to_string())
        .collect();
    d
}

/// Make service `target`'s own env vars and secret files equal to `vars`
/// and `files` (a snapshot's service or group). Without `apply`, only
/// computes the change to show. With it, replaces both sets (Render's
/// `PUT /services/{id}/env-vars` and `/secret-files` replace the whole
/// set), then reads them back and compares.
pub fn push_env(
    client: &Client,
    target: &str,
    vars: &[EnvVar],
    files: &[SecretFile],
    apply: bool,
) -> Result<EnvPlan> {
    let mut filter = vec![("name", target.to_string())];
    if let Some(owner) = &client.options().owner_id {
        filter.push(("ownerId", owner.clone()));
    }
    let found = client.list("/services", "service", &filter)?;
    let found: Vec<&Value> = found
        .iter()
        .filter(|s| s.get("name").and_then(Value::as_str) == Some(target))
        .collect();
    let id = match found.as_slice() {
        [one] => one
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        [] => {
            return Err(Error::Invalid(format!(
                "Render has no service named {target:?} for this API key; create the staging service first"
            )))
        }
        _ => {
            return Err(Error::Invalid(format!(
                "Render has {} services named {target:?}; set [render] owner_id to choose",
                found.len()
            )))
        }
    };
    let (cur_vars, cur_files) = service_env(client, &id)?;
    let mut plan = EnvPlan {
        service: target.to_string(),
        service_id: id.clone(),
        env_vars: delta_of(&cur_vars, vars, |v| &v.key, |v| &v.value),
        secret_files: delta_of(&cur_files, files, |f| &f.name, |f| &f.content),
        applied: false,
    };
    if !apply || plan.is_empty() {
        plan.applied = apply;
        return Ok(plan);
    }
    let body: Vec<Value> = vars
        .iter()
        .map(|v| json!({"key": v.key, "value": v.value}))
        .collect();
    client.put(&format!("/services/{id}/env-vars"), &Value::Array(body))?;
    if !plan.secret_files.is_empty() {
        let body: Vec<Value> = files
            .iter()
            .map(|f| json!({"name": f.name, "content": f.content}))
            .collect();
        client.put(&format!("/services/{id}/secret-files"), &Value::Array(body))?;
    }
    let (new_vars, new_files) = service_env(client, &id)?;
    let mut want_vars = vars.to_vec();
    want_vars.sort_by(|a, b| a.key.cmp(&b.key));
    let mut want_files = files.to_vec();
    want_files.sort_by(|a, b| a.name.cmp(&b.name));
    if new_vars != want_vars || new_files != want_files {
        return Err(Error::Mismatch(format!(
            "after the update, service {target:?} does not hold the snapshot's variables and files: check it in the Dashboard"
        )));
    }
    plan.applied = true;
    Ok(plan)
}

/// The variables and files of service `name` (or env group `env-group/NAME`).
pub fn env_set<'a>(
    snap: &'a RenderSnapshot,
    name: &str,
) -> Result<(&'a [EnvVar], &'a [SecretFile])> {
    if let Some(g) = name.strip_prefix("env-group/") {
        let g: &EnvGroup = snap
            .env_groups
            .iter()
            .find(|x| x.name == g)
            .ok_or_else(|| Error::Invalid(format!("the snapshot has no env group {g:?}")))?;
        return Ok((&g.env_vars, &g.secret_files));
    }
    let s = snap.service(name).ok_or_else(|| {
        let names: Vec<&str> = snap.services.iter().map(|s| s.name.as_str()).collect();
        Error::Invalid(format!(
            "the snapshot has no service {name:?}; it has: {}",
            names.join(", ")
        ))
    })?;
    Ok((&s.env_vars, &s.secret_files))
}
