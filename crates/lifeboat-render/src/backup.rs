//! Storing a Render snapshot: one item per service (`service/NAME`) and per
//! environment group (`env-group/NAME`), each the JSON of what was read,
//! values included (they are encrypted with the data like everything else).
//!
//! The manifest entry of each item carries no value, only fingerprints,
//! and the same fingerprints go into the source's state file, which the
//! backup key can read: per variable, secret file and setting, the
//! first 16 hex digits of HMAC-SHA256 under a key derived from the dedup
//! secret. That is what lets `diff` name the variables that changed without
//! the restore key. The backup host that holds the dedup secret also holds
//! the Render API key, so the fingerprints give it nothing it could not read.

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

const STATE_VERSION: u32 = 1;

/// The fingerprints of a snapshot's Render items (item name -> manifest
/// meta), from its state file: readable with the backup key.
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
    if v.get("version").and_then(Value::as_u64) != Some(u64::from(STATE_VERSION)) {
        return Err(crate::Error::Mismatch(
            "the Render state has a format this lifeboat does not know".into(),
        ));
    }
    Ok(v.get("items")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
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
    // The same fingerprints in the state file, which the backup key reads.
    let state = json!({ "version": STATE_VERSION, "items": prints });
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
        .map_err(|e| crate::Error::Invalid(format!("serializing {name}: {e}")))?;
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
