//! Getting a Render snapshot back out: read it from the store, write `.env`
//! files and secret files (0600), export a Blueprint, or put the variables
//! into a (staging) service through the API after showing the change.

use std::collections::BTreeMap;
use std::fs;
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
    /// Which file holds which service or env group.
    pub sets: Vec<EnvSetFiles>,
}

/// Where one service's or env group's variables and secret files went.
#[derive(Debug, Clone, Serialize)]
pub struct EnvSetFiles {
    /// `service` or `env_group`.
    pub kind: &'static str,
    pub name: String,
    pub id: String,
    /// Its `.env` file.
    pub env_file: PathBuf,
    /// Its secret files' directory, when it has secret files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_files_dir: Option<PathBuf>,
}

fn refused(what: String) -> Error {
    Error::Refused(format!(
        "{what}; refusing to write the env dir (was the snapshot forged? --render-yaml and \
         --to-service do not use names as files)"
    ))
}

/// One planned set: whose, the file base name, and what goes in.
struct Planned<'a> {
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    base: String,
    vars: &'a [EnvVar],
    files: &'a [SecretFile],
}

/// Choose every file name before writing one. Names come from the snapshot:
/// each must be one plain path component ([`lifeboat_paths::component`]).
/// Services and groups whose names would share a file (exactly, or ignoring
/// case as macOS and Windows do; `env-group.x` is also the group `x`) are
/// all named `NAME (ID)` instead; if that still collides, nothing is
/// written. Two secret files of one name in one set are refused.
fn plan_env_dir(snap: &RenderSnapshot) -> Result<Vec<Planned<'_>>> {
    let mut plan = Vec::new();
    for s in &snap.services {
        plan.push(Planned {
            kind: "service",
            name: &s.name,
            id: &s.id,
            base: s.name.clone(),
            vars: &s.env_vars,
            files: &s.secret_files,
        });
    }
    for g in &snap.env_groups {
        plan.push(Planned {
            kind: "env_group",
            name: &g.name,
            id: &g.id,
            base: format!("env-group.{}", g.name),
            vars: &g.env_vars,
            files: &g.secret_files,
        });
    }
    for p in &plan {
        lifeboat_paths::component(p.name)
            .map_err(|e| refused(format!("the {} name {e}", p.kind.replace('_', " "))))?;
    }
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for p in &plan {
        *count
            .entry(lifeboat_paths::collision_key(&p.base))
            .or_default() += 1;
    }
    for p in &mut plan {
        if count[&lifeboat_paths::collision_key(&p.base)] > 1 {
            lifeboat_paths::component(p.id)
                .map_err(|e| refused(format!("the {} id {e}", p.kind.replace('_', " "))))?;
            p.base = format!("{} ({})", p.base, p.id);
        }
    }
    let mut seen: BTreeMap<String, &Planned> = BTreeMap::new();
    for p in &plan {
        for f in [
            format!("{}.env", p.base),
            format!("{}.secret-files", p.base),
        ] {
            lifeboat_paths::component(&f).map_err(|e| refused(format!("the file name {e}")))?;
        }
        if let Some(o) = seen.insert(lifeboat_paths::collision_key(&p.base), p) {
            return Err(refused(format!(
                "{} {} ({}) and {} {} ({}) would be written to one file",
                o.kind,
                lifeboat_paths::shown(o.name),
                lifeboat_paths::shown(o.id),
                p.kind,
                lifeboat_paths::shown(p.name),
                lifeboat_paths::shown(p.id)
            )));
        }
        let mut names = BTreeMap::new();
        for f in p.files {
            lifeboat_paths::component(&f.name).map_err(|e| {
                refused(format!(
                    "a secret file of {} {}: the name {e}",
                    p.kind,
                    lifeboat_paths::shown(p.name)
                ))
            })?;
            if let Some(other) = names.insert(lifeboat_paths::collision_key(&f.name), &f.name) {
                return Err(refused(format!(
                    "{} {} has two secret files {} and {} that would be written to one file",
                    p.kind,
                    lifeboat_paths::shown(p.name),
                    lifeboat_paths::shown(other),
                    lifeboat_paths::shown(&f.name)
                )));
            }
        }
    }
    Ok(plan)
}

fn write_private(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    // An exclusive temporary file (0600) renamed into place: a link planted
    // at the name is replaced, never written through.
    lifeboat_paths::write_file(path, bytes, replace, Some(0o600))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

fn private_dir(path: &Path) -> Result<()> {
    lifeboat_store::create_private_dir(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))
}

/// A secret-files directory inside the env dir: a real directory (a planted
/// link is refused), mode 0700.
fn private_subdir(path: &Path) -> Result<()> {
    let what = || format!("creating {}", path.display());
    lifeboat_paths::create_one_dir(path).map_err(|e| Error::io(what(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(what(), e))?;
    }
    Ok(())
}

fn read_back(path: &Path) -> Result<Vec<u8>> {
    lifeboat_paths::refuse_link(path).map_err(|e| Error::io("reading back", e))?;
    fs::read(path).map_err(|e| Error::io(format!("reading back {}", path.display()), e))
}

/// How `write_env_dir` writes each set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvForm {
    /// `NAME.env` for this reader, secret files beside it.
    Env(crate::dotenv::Dialect),
    /// `NAME.json`: `{"name","id","env":{..},"secret_files":{..}}`.
    Json,
}

/// Write `DIR/NAME.env` for every service and `DIR/env-group.NAME.env` for
/// every group (mode 0600), and their secret files under
/// `DIR/NAME.secret-files/`; or, as JSON, `DIR/NAME.json` holding both.
/// Names that would share a file become `NAME (ID)` (see the report's
/// `sets`). Once everything is written, each file is read back (an env file
/// by its reader's rules, each secret file byte by byte) and compared with
/// the snapshot, before this returns. A value the chosen reader cannot
/// represent is an error naming the key, before any file is written.
pub fn write_env_dir(
    snap: &RenderSnapshot,
    dir: &Path,
    force: bool,
    form: EnvForm,
) -> Result<EnvDirReport> {
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
    let plan = plan_env_dir(snap)?;
    let texts = plan
        .iter()
        .map(|p| match form {
            EnvForm::Env(d) => crate::dotenv::format_for(p.vars, d),
            EnvForm::Json => Ok(crate::dotenv::json_set(p.name, p.id, p.vars, p.files)),
        })
        .collect::<Result<Vec<String>>>()?;
    private_dir(dir)?;
    let mut report = EnvDirReport::default();
    let ext = if form == EnvForm::Json { "json" } else { "env" };
    for (p, text) in plan.iter().zip(&texts) {
        let env = dir.join(format!("{}.{ext}", p.base));
        write_private(&env, text.as_bytes(), force)?;
        report.env_vars += p.vars.len() as u64;
        report.files.push(env.clone());
        let mut set = EnvSetFiles {
            kind: p.kind,
            name: p.name.to_string(),
            id: p.id.to_string(),
            env_file: env,
            secret_files_dir: None,
        };
        if form == EnvForm::Json {
            report.secret_files += p.files.len() as u64;
        } else if !p.files.is_empty() {
            let fdir = dir.join(format!("{}.secret-files", p.base));
            private_subdir(&fdir)?;
            for f in p.files {
                let path = fdir.join(&f.name);
                write_private(&path, f.content.as_bytes(), force)?;
                report.secret_files += 1;
                report.files.push(path);
            }
            set.secret_files_dir = Some(fdir);
        }
        report.sets.push(set);
    }
    // Read back only after everything is written: a file that a later one
    // replaced would show here.
    for (p, set) in plan.iter().zip(&report.sets) {
        lifeboat_paths::refuse_link(&set.env_file).map_err(|e| Error::io("reading back", e))?;
        let same = match form {
            EnvForm::Env(d) => {
                let back = crate::dotenv::read_for(&set.env_file, d)?;
                let want: Vec<(String, String)> = p
                    .vars
                    .iter()
                    .map(|v| (v.key.clone(), v.value.clone()))
                    .collect();
                back == want
            }
            EnvForm::Json => {
                let back: serde_json::Value = serde_json::from_slice(&read_back(&set.env_file)?)
                    .map_err(|e| Error::Mismatch(format!("{}: {e}", set.env_file.display())))?;
                let want: serde_json::Value =
                    serde_json::from_str(&crate::dotenv::json_set(p.name, p.id, p.vars, p.files))
                        .map_err(|e| Error::Internal(format!("the JSON written: {e}")))?;
                back == want
            }
        };
        if !same {
            return Err(Error::Mismatch(format!(
                "{} does not read back as the variables of {} {}",
                set.env_file.display(),
                p.kind,
                lifeboat_paths::shown(p.name)
            )));
        }
        if let Some(fdir) = &set.secret_files_dir {
            for f in p.files {
                let path = fdir.join(&f.name);
                if read_back(&path)? != f.content.as_bytes() {
                    return Err(Error::Mismatch(format!(
                        "{} does not read back as written",
                        path.display()
                    )));
                }
            }
        }
    }
    Ok(report)
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

/// A YAML mapping built in order; every value from the snapshot goes in as
/// a string (or a number or boolean this code chose), so the serializer
/// quotes it as needed and it can only ever be one scalar.
#[derive(Default)]
struct Map(serde_norway::Mapping);

impl Map {
    fn set(&mut self, key: &str, value: impl Into<Yaml>) -> &mut Self {
        self.0.insert(Yaml::String(key.into()), value.into());
        self
    }
}

use serde_norway::Value as Yaml;

fn text(s: &str) -> Yaml {
    Yaml::String(s.to_string())
}

/// A name for a YAML comment: printable ASCII only (escaped), so a line
/// break or a look-alike in a forged name cannot end the comment.
fn comment_safe(s: &str) -> String {
    s.escape_default().to_string()
}

/// A Render Blueprint (`render.yaml`) that recreates the services and env
/// groups. Values are never written: every variable is `sync: false`, so
/// the Dashboard asks for it on creation (fill them from `--to-env-dir`).
/// Secret files have no Blueprint field and are listed in a comment.
/// Written through a YAML serializer: whatever a snapshot holds (an unknown
/// service type, a name with a newline and `key:`), it ends up as one
/// string scalar, never as YAML structure.
pub fn blueprint(snap: &RenderSnapshot) -> Result<String> {
    let mut services = Vec::new();
    let mut secret_notes = Vec::new();
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
        let mut m = Map::default();
        m.set("type", text(kind)).set("name", text(&s.name));
        let runtime = if s.kind == "static_site" {
            Some("static".to_string())
        } else {
            details(&["runtime"]).or_else(|| details(&["env"]))
        };
        if let Some(r) = runtime {
            m.set("runtime", text(&r));
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
                m.set(key, text(&v));
            }
        }
        if let Some(a) = setting_str(st, &["autoDeploy"]) {
            m.set("autoDeploy", Yaml::Bool(a == "yes"));
        }
        if let Some(n) = setting(st, &["serviceDetails", "numInstances"]).and_then(Value::as_u64) {
            m.set("numInstances", Yaml::Number(n.into()));
        }
        let domains: Vec<Yaml> = s
            .custom_domains
            .iter()
            .filter_map(|d| d.get("name").and_then(Value::as_str))
            .map(text)
            .collect();
        if !domains.is_empty() {
            m.set("domains", Yaml::Sequence(domains));
        }
        let fields = |list: &[Value], keys: &[&str]| -> Yaml {
            Yaml::Sequence(
                list.iter()
                    .map(|r| {
                        let mut e = Map::default();
                        for k in keys {
                            let v = r.get(k).and_then(Value::as_str).unwrap_or_default();
                            e.set(k, text(v));
                        }
                        Yaml::Mapping(e.0)
                    })
                    .collect(),
            )
        };
        if !s.routes.is_empty() {
            m.set(
                "routes",
                fields(&s.routes, &["type", "source", "destination"]),
            );
        }
        if !s.headers.is_empty() {
            m.set("headers", fields(&s.headers, &["path", "name", "value"]));
        }
        if !s.env_vars.is_empty() || !s.env_groups.is_empty() {
            m.set("envVars", env_vars(&s.env_vars, &s.env_groups));
        }
        if !s.secret_files.is_empty() {
            let names: Vec<String> = s
                .secret_files
                .iter()
                .map(|f| comment_safe(&f.name))
                .collect();
            secret_notes.push(format!(
                "#   {}: {}\n",
                comment_safe(&s.name),
                names.join(", ")
            ));
        }
        services.push(Yaml::Mapping(m.0));
    }
    let mut doc = Map::default();
    doc.set("services", Yaml::Sequence(services));
    if !snap.env_groups.is_empty() {
        let groups = snap
            .env_groups
            .iter()
            .map(|g| {
                let mut m = Map::default();
                m.set("name", text(&g.name));
                if !g.env_vars.is_empty() {
                    m.set("envVars", env_vars(&g.env_vars, &[]));
                }
                Yaml::Mapping(m.0)
            })
            .collect();
        doc.set("envVarGroups", Yaml::Sequence(groups));
    }
    let body = serde_norway::to_string(&Yaml::Mapping(doc.0))
        .map_err(|e| Error::Internal(format!("writing the Blueprint: {e}")))?;
    let mut y = String::new();
    y.push_str("# Render Blueprint exported by lifeboat from a snapshot.\n");
    y.push_str("# Secret values are not in this file (sync: false): take them from\n");
    y.push_str("# `lifeboat restore SNAPSHOT --source render --to-env-dir DIR`.\n");
    if !secret_notes.is_empty() {
        y.push_str("# Secret files to add in the Dashboard (names escaped):\n");
        for n in secret_notes {
            y.push_str(&n);
        }
    }
    y.push_str(&body);
    Ok(y)
}

fn env_vars(vars: &[EnvVar], groups: &[String]) -> Yaml {
    let mut out: Vec<Yaml> = vars
        .iter()
        .map(|v| {
            let mut e = Map::default();
            e.set("key", text(&v.key)).set("sync", Yaml::Bool(false));
            Yaml::Mapping(e.0)
        })
        .collect();
    for g in groups {
        let mut e = Map::default();
        e.set("fromGroup", text(g));
        out.push(Yaml::Mapping(e.0));
    }
    Yaml::Sequence(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dotenv::Dialect;

    fn service(id: &str, name: &str, kind: &str) -> crate::model::Service {
        crate::model::Service {
            id: id.into(),
            name: name.into(),
            kind: kind.into(),
            settings: json!({"repo": "https://github.com/o/r", "autoDeploy": "yes"}),
            env_vars: vec![EnvVar {
                key: "K".into(),
                value: format!("value of {id}"),
            }],
            secret_files: vec![],
            custom_domains: vec![],
            routes: vec![],
            headers: vec![],
            env_groups: vec!["g\n  - evil: 1".into()],
        }
    }

    #[test]
    fn blueprint_values_are_scalars_whatever_they_hold() {
        let evil = "web\n    name: injected\n  - type: worker\n    name: planted";
        let mut s = service("srv-1", "api: [x]\n# c", evil);
        s.secret_files = vec![SecretFile {
            name: "a\nservices: []".into(),
            content: "x".into(),
        }];
        let snap = RenderSnapshot {
            services: vec![s],
            env_groups: vec![],
        };
        let y = blueprint(&snap).unwrap();
        let doc: serde_norway::Value = serde_norway::from_str(&y).unwrap();
        let services = doc["services"].as_sequence().unwrap();
        assert_eq!(services.len(), 1, "{y}");
        assert_eq!(services[0]["type"].as_str(), Some(evil), "{y}");
        assert_eq!(services[0]["name"].as_str(), Some("api: [x]\n# c"));
        assert_eq!(services[0]["autoDeploy"].as_bool(), Some(true));
        assert_eq!(
            services[0]["envVars"][1]["fromGroup"].as_str(),
            Some("g\n  - evil: 1")
        );
        // The secret file name is in a comment, escaped onto one line.
        assert!(y.contains("a\\nservices: []"), "{y}");
        assert_eq!(doc.as_mapping().unwrap().len(), 1, "{y}");
    }

    #[test]
    fn env_dir_names_are_checked_and_collisions_disambiguated() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../../x", "/etc/cron.d/x", "..", "a\nb", ""] {
            let snap = RenderSnapshot {
                services: vec![service("srv-1", bad, "web_service")],
                env_groups: vec![],
            };
            let e = write_env_dir(
                &snap,
                &dir.path().join("e"),
                false,
                EnvForm::Env(Dialect::Rust),
            )
            .unwrap_err();
            assert!(matches!(e, Error::Refused(_)), "{bad:?}: {e}");
            assert!(!dir.path().join("e").exists(), "{bad:?} wrote something");
        }
        let snap = RenderSnapshot {
            services: vec![
                service("srv-a", "api", "web_service"),
                service("srv-b", "api", "web_service"),
                service("srv-c", "API", "web_service"),
                service("srv-d", "env-group.shared", "web_service"),
            ],
            env_groups: vec![EnvGroup {
                id: "evg-1".into(),
                name: "shared".into(),
                env_vars: vec![],
                secret_files: vec![],
                services: vec![],
            }],
        };
        let out = dir.path().join("ok");
        let r = write_env_dir(&snap, &out, false, EnvForm::Env(Dialect::Rust)).unwrap();
        let files: Vec<(String, String)> = r
            .sets
            .iter()
            .map(|s| {
                let f = s.env_file.file_name().unwrap().to_string_lossy();
                (s.id.clone(), f.into_owned())
            })
            .collect();
        assert_eq!(
            files,
            [
                ("srv-a".into(), "api (srv-a).env".into()),
                ("srv-b".into(), "api (srv-b).env".into()),
                ("srv-c".into(), "API (srv-c).env".into()),
                ("srv-d".into(), "env-group.shared (srv-d).env".into()),
                ("evg-1".into(), "env-group.shared (evg-1).env".into()),
            ]
        );
        let a = std::fs::read_to_string(out.join("api (srv-a).env")).unwrap();
        assert!(a.contains("value of srv-a"), "{a}");

        // Same name and same id: nothing can tell them apart, so refused.
        let twins = RenderSnapshot {
            services: vec![
                service("srv-a", "api", "web_service"),
                service("srv-a", "api", "web_service"),
            ],
            env_groups: vec![],
        };
        let e = write_env_dir(
            &twins,
            &dir.path().join("t"),
            false,
            EnvForm::Env(Dialect::Rust),
        )
        .unwrap_err();
        assert!(e.to_string().contains("one file"), "{e}");
        assert!(!dir.path().join("t").exists());
    }
}
