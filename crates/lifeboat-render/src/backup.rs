//! Storing a Render snapshot: one item per service (`service/NAME`) and per
//! environment group (`env-group/NAME`), each the JSON of what was read,
//! values included (they are encrypted with the data like everything else).
//!
//! The manifest entry of each item carries no value, only fingerprints:
//! per variable, secret file and setting, the first 16 hex digits of
//! HMAC-SHA256 under a key derived from the dedup secret. The manifest is
//! sealed to the data recipient, so only the restore key reads them: that
//! is what lets `diff` with the restore key name the values that changed.
//! The source's state file, which the backup key reads, holds the *names*
//! only (variables, files, settings, domains, links), so `diff` with the
//! backup key names what was added or removed. A backup host holds the
//! dedup secret, so it could test guessed values against fingerprints; it
//! never sees past ones (history: rotated secrets), only the live values
//! the Render API key shows it anyway.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;

use hmac::{Hmac, Mac};
use lifeboat_store::{Access, BackupSession, ManifestItem, NoProgress};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::api::{Client, Requests};
use crate::error::Result;
use crate::model::{fetch, Counts, EnvGroup, EnvVar, SecretFile, Service};
use crate::SOURCE;

/// 2: names only (1, before 2026-12-01: the fingerprints too).
const STATE_VERSION: u32 = 2;

/// The fingerprints of a snapshot's Render items (item name -> manifest
/// meta), from its manifest: needs the restore key.
pub fn fingerprints_of_items(items: &[ManifestItem]) -> BTreeMap<String, Value> {
    items
        .iter()
        .filter(|i| i.source == SOURCE)
        .map(|i| (i.name.clone(), i.meta.clone()))
        .collect()
}

/// The names in a snapshot's Render items (item name -> manifest meta with
/// every fingerprint blanked), from its state file: readable with the
/// backup key. Compared with [`diff`](crate::diff), they show what was
/// added and removed, never what changed.
pub fn fingerprints<A: lifeboat_store::Access>(
    repo: &lifeboat_store::Repository<A>,
    snapshot: &lifeboat_store::Snapshot,
) -> Result<BTreeMap<String, Value>> {
    let raw = repo.source_state(snapshot, SOURCE)?.ok_or_else(|| {
        crate::Error::Invalid(
            "this snapshot has no Render backup (taken with --source render?)".into(),
        )
    })?;
    let v: Value = serde_json::from_slice(&raw)
        .map_err(|e| crate::Error::Mismatch(format!("the Render state is unreadable: {e}")))?;
    if !matches!(v.get("version").and_then(Value::as_u64), Some(1 | 2)) {
        return Err(crate::Error::Mismatch(
            "the Render state has a format this lifeboat does not know".into(),
        ));
    }
    // Version 1 states still carry fingerprints: blank them, so the
    // backup key's diff means the same whatever wrote the state.
    Ok(v.get("items")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), names_only(v))).collect())
        .unwrap_or_default())
}

/// A manifest meta with its fingerprints blanked: the maps of settings, env
/// vars and files keep their names, every value becomes "".
pub(crate) fn names_only(meta: &Value) -> Value {
    let mut out = meta.clone();
    for field in ["settings", "env", "files"] {
        if let Some(m) = out.get_mut(field).and_then(Value::as_object_mut) {
            for v in m.values_mut() {
                *v = Value::String(String::new());
            }
        }
    }
    out
}

/// Item kinds.
pub const SERVICE_KIND: &str = "render-service";
pub const ENV_GROUP_KIND: &str = "render-env-group";

/// What a backup did.
#[derive(Debug, Clone)]
pub struct RenderReport {
    pub counts: Counts,
    pub requests: Requests,
    /// Item names stored.
    pub items: Vec<String>,
}

/// Read everything from Render and store it in `session`. Nothing is
/// written until every API call succeeded: a failure part-way leaves the
/// session without Render items (the caller aborts it).
pub fn backup<A: Access>(session: &mut BackupSession<A>, client: &Client) -> Result<RenderReport> {
    let snap = fetch(client)?;
    let fp = Fingerprint(session.derived_key("render-values"));
    let mut items = Vec::new();
    let mut used = HashSet::new();
    let mut prints = BTreeMap::new();
    for s in &snap.services {
        let name = unique(&mut used, "service", &s.name, &s.id);
        let meta = service_meta(&fp, s);
        store(session, &name, SERVICE_KIND, s, meta.clone())?;
        prints.insert(name.clone(), meta);
        items.push(name);
    }
    for g in &snap.env_groups {
        let name = unique(&mut used, "env-group", &g.name, &g.id);
        let meta = group_meta(&fp, g);
        store(session, &name, ENV_GROUP_KIND, g, meta.clone())?;
        prints.insert(name.clone(), meta);
        items.push(name);
    }
    // Names only in the state file, which the backup key reads.
    let names: BTreeMap<&String, Value> = prints.iter().map(|(k, v)| (k, names_only(v))).collect();
    let state = json!({ "version": STATE_VERSION, "items": names });
    session.set_source_state(SOURCE, state.to_string().as_bytes())?;
    let counts = snap.counts();
    session.set_source_facts(
        SOURCE,
        json!({
            "api_url": client.options().api_url,
            "owner_id": client.options().owner_id,
            "services": counts.services,
            "env_vars": counts.env_vars,
            "secret_files": counts.secret_files,
            "env_groups": counts.env_groups,
            "custom_domains": counts.custom_domains,
        }),
    );
    Ok(RenderReport {
        counts,
        requests: client.requests(),
        items,
    })
}

/// `service/NAME`, or `service/NAME (ID)` when two share a name.
fn unique(used: &mut HashSet<String>, prefix: &str, name: &str, id: &str) -> String {
    let plain = format!("{prefix}/{name}");
    if used.insert(plain.clone()) {
        return plain;
    }
    let with_id = format!("{prefix}/{name} ({id})");
    used.insert(with_id.clone());
    with_id
}

fn store<A: Access>(
    session: &mut BackupSession<A>,
    name: &str,
    kind: &str,
    what: &impl Serialize,
    meta: Value,
) -> Result<ManifestItem> {
    let body = serde_json::to_vec_pretty(what)
        .map_err(|e| crate::Error::Internal(format!("serializing {name}: {e}")))?;
    let mut item = session.item(SOURCE, name, kind, &NoProgress)?;
    item.write_all(&body)
        .map_err(|e| crate::Error::io(format!("storing {name}"), e))?;
    Ok(item.finish(meta)?)
}

/// Keyed fingerprints of values.
pub(crate) struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(&self, name: &str, value: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    fn vars(&self, vars: &[EnvVar]) -> BTreeMap<String, String> {
        vars.iter()
            .map(|v| (v.key.clone(), self.of(&v.key, v.value.as_bytes())))
            .collect()
    }

    fn files(&self, files: &[SecretFile]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|f| (f.name.clone(), self.of(&f.name, f.content.as_bytes())))
            .collect()
    }
}

fn settings_fp(fp: &Fingerprint, s: &Service) -> BTreeMap<String, String> {
    s.setting_leaves()
        .into_iter()
        .map(|(k, v)| {
            let f = fp.of(&k, v.to_string().as_bytes());
            (k, f)
        })
        .collect()
}

fn service_meta(fp: &Fingerprint, s: &Service) -> Value {
    let domains: Vec<&str> = s
        .custom_domains
        .iter()
        .filter_map(|d| d.get("name").and_then(Value::as_str))
        .collect();
    json!({
        "id": s.id,
        "type": s.kind,
        "settings": settings_fp(fp, s),
        "env": fp.vars(&s.env_vars),
        "files": fp.files(&s.secret_files),
        "domains": domains,
        "env_groups": s.env_groups,
    })
}

fn group_meta(fp: &Fingerprint, g: &EnvGroup) -> Value {
    json!({
        "id": g.id,
        "env": fp.vars(&g.env_vars),
        "files": fp.files(&g.secret_files),
        "services": g.services,
    })
}
