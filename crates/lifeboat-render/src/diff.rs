//! The difference between two Render snapshots, by name: services and env
//! groups added or removed, and per service or group the settings, env
//! vars, secret files, domains and links added, removed or changed.
//!
//! It is computed from the fingerprints of the two snapshots (see
//! [`fingerprints`](crate::fingerprints)), so it needs only the backup key
//! and never sees a value. [`RenderDiff::reveal`] adds the
//! values from the decrypted snapshots (restore key) when asked for.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::model::{RenderSnapshot, Service};

/// Names added, removed and changed in one category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Delta {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    fn of_maps(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> Delta {
        let mut d = Delta::default();
        for (k, v) in b {
            match a.get(k) {
                None => d.added.push(k.clone()),
                Some(old) if old != v => d.changed.push(k.clone()),
                Some(_) => {}
            }
        }
        d.removed = a.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
        d
    }

    fn of_sets(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Delta {
        Delta {
            added: b.difference(a).cloned().collect(),
            removed: a.difference(b).cloned().collect(),
            changed: Vec::new(),
        }
    }
}

/// How one service or env group differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `service/NAME` or `env-group/NAME`.
    pub item: String,
    /// `added`, `removed` or `changed`.
    pub status: &'static str,
    pub settings: Delta,
    pub env_vars: Delta,
    pub secret_files: Delta,
    pub domains: Delta,
    /// Linked env groups (of a service) or services (of a group).
    pub links: Delta,
    /// With [`RenderDiff::reveal`]: `category:name` -> (old, new).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, (Option<String>, Option<String>)>,
}

/// All changes between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RenderDiff {
    pub changes: Vec<Change>,
}

fn map(meta: &Value, field: &str) -> BTreeMap<String, Value> {
    meta.get(field)
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn set(meta: &Value, field: &str) -> BTreeSet<String> {
    meta.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn compare(item: &str, status: &'static str, a: &Value, b: &Value) -> Change {
    let links = if item.starts_with("service/") {
        "env_groups"
    } else {
        "services"
    };
    Change {
        item: item.to_string(),
        status,
        settings: Delta::of_maps(&map(a, "settings"), &map(b, "settings")),
        env_vars: Delta::of_maps(&map(a, "env"), &map(b, "env")),
        secret_files: Delta::of_maps(&map(a, "files"), &map(b, "files")),
        domains: Delta::of_sets(&set(a, "domains"), &set(b, "domains")),
        links: Delta::of_sets(&set(a, links), &set(b, links)),
        values: BTreeMap::new(),
    }
}

/// Compare the fingerprints of two snapshots (`a` older, `b` newer).
pub fn diff(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> RenderDiff {
    let mut changes = Vec::new();
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let change = match (a.get(name), b.get(name)) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) => compare(name, "changed", x, y),
            (None, Some(y)) => compare(name, "added", &Value::Null, y),
            (Some(x), None) => compare(name, "removed", x, &Value::Null),
            (None, None) => continue,
        };
        changes.push(change);
    }
    RenderDiff { changes }
}

/// The values of one service or group, by `category:name`.
fn values_of(snap: &RenderSnapshot, item: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let (vars, files) = if let Some(name) = item.strip_prefix("service/") {
        let Some(s) = snap.services.iter().find(|s| s.name == name) else {
            return out;
        };
        for (k, v) in settings_values(s) {
            out.insert(format!("settings:{k}"), v);
        }
        (&s.env_vars, &s.secret_files)
    } else if let Some(name) = item.strip_prefix("env-group/") {
        let Some(g) = snap.env_groups.iter().find(|g| g.name == name) else {
            return out;
        };
        (&g.env_vars, &g.secret_files)
    } else {
        return out;
    };
    for v in vars {
        out.insert(format!("env_vars:{}", v.key), v.value.clone());
    }
    for f in files {
        out.insert(format!("secret_files:{}", f.name), f.content.clone());
    }
    out
}

fn settings_values(s: &Service) -> BTreeMap<String, String> {
    s.setting_leaves()
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect()
}

impl RenderDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Fill in old and new values of everything named as changed, added or
    /// removed, from the decrypted snapshots. Only for `--show-values`.
    pub fn reveal(&mut self, old: &RenderSnapshot, new: &RenderSnapshot) {
        for c in &mut self.changes {
            let (a, b) = (values_of(old, &c.item), values_of(new, &c.item));
            for (cat, delta) in [
                ("settings", &c.settings),
                ("env_vars", &c.env_vars),
                ("secret_files", &c.secret_files),
            ] {
                for name in delta
                    .added
                    .iter()
                    .chain(&delta.removed)
                    .chain(&delta.changed)
                {
                    let key = format!("{cat}:{name}");
                    let pair = (a.get(&key).cloned(), b.get(&key).cloned());
                    c.values.insert(key, pair);
                }
            }
        }
    }
}
