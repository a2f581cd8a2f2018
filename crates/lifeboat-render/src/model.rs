//! What a Render snapshot holds, and how it is read from the API.
//!
//! Endpoints relied on (shapes recorded in lifeboat-testkit's
//! `render/API.md`, from Render's public OpenAPI description):
//! `GET /services`, `/services/{id}/env-vars`, `/services/{id}/secret-files`,
//! `/services/{id}/custom-domains`, `/services/{id}/routes`,
//! `/services/{id}/headers`, `GET /env-groups`, `GET /env-groups/{id}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::Client;
use crate::error::{Error, Result};

/// One environment variable. `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
}

impl std::fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvVar({}=<redacted>)", self.key)
    }
}

/// One secret file. `Debug` never shows the content.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFile {
    pub name: String,
    pub content: String,
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretFile({}, {} bytes)", self.name, self.content.len())
    }
}

/// A service as backed up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub name: String,
    /// `web_service`, `static_site`, `private_service`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The service object as Render returned it, minus `updatedAt`.
    pub settings: Value,
    /// Sorted by key.
    pub env_vars: Vec<EnvVar>,
    /// Sorted by name.
    pub secret_files: Vec<SecretFile>,
    /// Custom domain objects (`name`, `domainType`, ...).
    pub custom_domains: Vec<Value>,
    /// Redirect/rewrite rules (static sites).
    pub routes: Vec<Value>,
    /// Response headers (static sites).
    pub headers: Vec<Value>,
    /// Names of the environment groups linked to it.
    pub env_groups: Vec<String>,
}

impl Service {
    /// Every setting as a dotted path into `settings` with its leaf value,
    /// plus `routes` and `headers` as whole lists: what `diff` names and
    /// the fingerprints cover.
    pub(crate) fn setting_leaves(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        flatten(&self.settings, "", &mut out);
        for (what, list) in [("routes", &self.routes), ("headers", &self.headers)] {
            if !list.is_empty() {
                out.insert(what.to_string(), Value::Array(list.clone()));
            }
        }
        out
    }
}

/// Flatten a JSON object into `a.b.c` paths with their leaf values.
fn flatten(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, &p, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// An environment group as backed up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvGroup {
    pub id: String,
    pub name: String,
    pub env_vars: Vec<EnvVar>,
    pub secret_files: Vec<SecretFile>,
    /// Names of the services linked to it.
    pub services: Vec<String>,
}

/// Everything read from one Render account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderSnapshot {
    pub services: Vec<Service>,
    pub env_groups: Vec<EnvGroup>,
}

impl RenderSnapshot {
    /// Counts for facts and reports.
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            services: self.services.len() as u64,
            env_groups: self.env_groups.len() as u64,
            ..Default::default()
        };
        for s in &self.services {
            c.env_vars += s.env_vars.len() as u64;
            c.secret_files += s.secret_files.len() as u64;
            c.custom_domains += s.custom_domains.len() as u64;
        }
        for g in &self.env_groups {
            c.env_vars += g.env_vars.len() as u64;
            c.secret_files += g.secret_files.len() as u64;
        }
        c
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// How much a snapshot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub services: u64,
    pub env_vars: u64,
    pub secret_files: u64,
    pub env_groups: u64,
    pub custom_domains: u64,
}

fn str_field(v: &Value, field: &str, path: &str) -> Result<String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::Shape {
            path: path.into(),
            what: format!("an element has no string {field:?}"),
        })
}

pub(crate) fn env_vars(list: Vec<Value>, path: &str) -> Result<Vec<EnvVar>> {
    let mut out = list
        .iter()
        .map(|v| {
            Ok(EnvVar {
                key: str_field(v, "key", path)?,
                // A generated value not yet set has no value; keep it empty.
                value: v
                    .get("value")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

pub(crate) fn secret_files(list: Vec<Value>, path: &str) -> Result<Vec<SecretFile>> {
    let mut out = list
        .iter()
        .map(|v| {
            Ok(SecretFile {
                name: str_field(v, "name", path)?,
                content: str_field(v, "content", path)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A service's own env vars and secret files (both sorted).
pub(crate) fn service_env(client: &Client, id: &str) -> Result<(Vec<EnvVar>, Vec<SecretFile>)> {
    let p = format!("/services/{id}/env-vars");
    let vars = env_vars(client.list(&p, "envVar", &[])?, &p)?;
    let p = format!("/services/{id}/secret-files");
    let files = secret_files(client.list(&p, "secretFile", &[])?, &p)?;
    Ok((vars, files))
}

/// Read services (filtered by the client's options) and the env groups
/// linked to them, with all their variables, files and domains.
pub fn fetch(client: &Client) -> Result<RenderSnapshot> {
    let opts = client.options();
    let mut filter = Vec::new();
    if let Some(owner) = &opts.owner_id {
        filter.push(("ownerId", owner.clone()));
    }
    let mut listed = client.list("/services", "service", &filter)?;
    if !opts.services.is_empty() {
        for want in &opts.services {
            if !listed
                .iter()
                .any(|s| s.get("name").and_then(Value::as_str) == Some(want))
            {
                return Err(Error::Invalid(format!(
                    "[render] services names {want:?}, but Render lists no service of that name"
                )));
            }
        }
        listed.retain(|s| {
            s.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| opts.services.iter().any(|w| w == n))
        });
    }
    let mut by_id = BTreeMap::new();
    let mut services = Vec::new();
    for mut settings in listed {
        let id = str_field(&settings, "id", "/services")?;
        let name = str_field(&settings, "name", "/services")?;
        let kind = str_field(&settings, "type", "/services")?;
        if let Some(obj) = settings.as_object_mut() {
            obj.remove("updatedAt");
        }
        let (env, files) = service_env(client, &id)?;
        let (mut domains, mut routes, mut headers) = (Vec::new(), Vec::new(), Vec::new());
        if kind == "web_service" || kind == "static_site" {
            domains = client.list(
                &format!("/services/{id}/custom-domains"),
                "customDomain",
                &[],
            )?;
        }
        if kind == "static_site" {
            routes = client.list(&format!("/services/{id}/routes"), "route", &[])?;
            headers = client.list(&format!("/services/{id}/headers"), "header", &[])?;
        }
        by_id.insert(id.clone(), name.clone());
        services.push(Service {
            id,
            name,
            kind,
            settings,
            env_vars: env,
            secret_files: files,
            custom_domains: domains,
            routes,
            headers,
            env_groups: Vec::new(),
        });
    }
    // Env groups: every group of the owner linked to a backed-up service
    // (all groups when no service filter is set).
    let mut env_groups = Vec::new();
    for meta in client.list("/env-groups", "envGroup", &filter)? {
        let id = str_field(&meta, "id", "/env-groups")?;
        let links: Vec<String> = meta
            .get("serviceLinks")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|s| s.get("id").and_then(Value::as_str))
                    .filter_map(|sid| by_id.get(sid).cloned())
                    .collect()
            })
            .unwrap_or_default();
        if !opts.services.is_empty() && links.is_empty() {
            continue;
        }
        let p = format!("/env-groups/{id}");
        let full = client.get(&p)?;
        let name = str_field(&full, "name", &p)?;
        let vars = full
            .get("envVars")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let files = full
            .get("secretFiles")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for s in services.iter_mut().filter(|s| links.contains(&s.name)) {
            s.env_groups.push(name.clone());
        }
        env_groups.push(EnvGroup {
            id,
            name,
            env_vars: env_vars(vars, &p)?,
            secret_files: secret_files(files, &p)?,
            services: links,
        });
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));
    env_groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(RenderSnapshot {
        services,
        env_groups,
    })
}
