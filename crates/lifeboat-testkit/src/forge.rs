//! Forging repository files, for the adversary tests: written from
//! docs/FORMAT.md alone (the `age` and `zstd` tools, HMAC, Ed25519), with
//! only the secrets a given attacker has. A storage-only attacker knows
//! what is public (the config, file names); a compromised backup host also
//! has the backup key's dedup secret and metadata identity.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A repository directory as an attacker sees it.
pub struct Store {
    pub dir: PathBuf,
}

fn pipe(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("join").expect("write");
    assert!(out.status.success(), "{cmd:?} failed");
    out.stdout
}

/// `sealed(x, R)` of FORMAT.md: zstd, then age to one recipient.
pub fn seal(recipient: &str, plain: &[u8]) -> Vec<u8> {
    let z = pipe(Command::new("zstd").args(["-q", "-c"]), plain);
    pipe(Command::new("age").args(["-r", recipient]), &z)
}

/// Open a sealed file with an identity (`AGE-SECRET-KEY-1...`).
pub fn open(identity: &str, sealed: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("id");
    std::fs::write(&key, format!("{identity}\n")).expect("write");
    let z = pipe(Command::new("age").arg("-d").arg("-i").arg(&key), sealed);
    pipe(Command::new("zstd").args(["-q", "-d", "-c"]), &z)
}

/// A new age identity and its recipient (`age-keygen`).
pub fn keygen() -> (String, String) {
    let out = Command::new("age-keygen").output().expect("age-keygen");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let identity = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("identity")
        .to_string();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("recipient")
        .to_string();
    (identity, recipient)
}

/// HMAC-SHA256.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// `hex(tag) ‖ "\n" ‖ body` with tag = HMAC(key, label ‖ 0x00 ‖ body).
pub fn tagged(key: &[u8], label: &str, body: &[u8]) -> Vec<u8> {
    let tag = hmac(key, &[label.as_bytes(), &[0], body]);
    let mut out = hex::encode(tag).into_bytes();
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// The file-tag key of a repository, from its dedup secret (hex).
pub fn file_key(dedup_secret_hex: &str) -> [u8; 32] {
    hmac(
        &hex::decode(dedup_secret_hex).expect("hex"),
        &[b"lifeboat file-auth v2"],
    )
}

/// The secrets of a backup key file: (dedup secret hex, metadata identity).
pub fn backup_key_secrets(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("backup key");
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .expect("line")
            .trim()
            .to_string()
    };
    (get("dedup-secret:"), get("metadata-identity:"))
}

/// Ed25519 over `config` with `"signature":""`, as FORMAT.md says;
/// returns (verify key hex, the config signed).
pub fn sign_config(seed: [u8; 32], mut config: serde_json::Value) -> (String, serde_json::Value) {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let verify = hex::encode(key.verifying_key().to_bytes());
    config["verify_key"] = verify.clone().into();
    config["signature"] = "".into();
    let sig = key.sign(&compact(&config));
    config["signature"] = hex::encode(sig.to_bytes()).into();
    (verify, config)
}

/// A format-1 config built from `honest` with other recipients and keys,
/// MACed as FORMAT.md says with the format-1 MAC key of `dedup_secret`
/// (which a backup host holds; anyone may pick their own).
pub fn format1_config(
    honest: &serde_json::Value,
    data_recipient: &str,
    metadata_recipient: &str,
    keys: serde_json::Value,
    dedup_secret: &[u8],
) -> serde_json::Value {
    let mut v = serde_json::json!({"version": 1});
    for k in ["id", "created", "chunker", "pack_size", "compression_level"] {
        v[k] = honest[k].clone();
    }
    v["data_recipient"] = data_recipient.into();
    v["metadata_recipient"] = metadata_recipient.into();
    v["keys"] = keys;
    v["mac"] = "".into();
    let mac_key = hmac(dedup_secret, &[b"lifeboat config-mac v1"]);
    v["mac"] = hex::encode(hmac(&mac_key, &[&compact(&v)])).into();
    v
}

/// Compact JSON in the order of the fields as they are (serde_json keeps
/// insertion order with `preserve_order`; without it, the order of the
/// file is kept by re-serializing the parsed struct: FORMAT.md's order).
fn compact(v: &serde_json::Value) -> Vec<u8> {
    let order = [
        "version",
        "id",
        "created",
        "chunker",
        "pack_size",
        "compression_level",
        "data_recipient",
        "metadata_recipient",
        "keys",
        "verify_key",
        "generation",
        "mac",
        "signature",
    ];
    let mut out = b"{".to_vec();
    let mut first = true;
    for k in order {
        if let Some(x) = v.get(k) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(serde_json::to_string(k).expect("key").as_bytes());
            out.push(b':');
            // Nested records keep FORMAT.md's field order too.
            match k {
                "chunker" => {
                    out.extend_from_slice(&ordered(x, &["min_size", "avg_size", "max_size"]))
                }
                "keys" => {
                    out.push(b'[');
                    for (i, e) in x
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                        .iter()
                        .enumerate()
                    {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(&ordered(e, &["file", "recipient", "created"]));
                    }
                    out.push(b']');
                }
                _ => out.extend_from_slice(serde_json::to_string(x).expect("value").as_bytes()),
            }
        }
    }
    out.push(b'}');
    out
}

/// `{...}` with the fields of `v` in `order`.
fn ordered(v: &serde_json::Value, order: &[&str]) -> Vec<u8> {
    let mut out = b"{".to_vec();
    for (i, k) in order.iter().filter(|k| v.get(**k).is_some()).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!("{}:{}", serde_json::json!(k), v[*k]).as_bytes());
    }
    out.push(b'}');
    out
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The plaintext config.
    pub fn config(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("config")).expect("config"))
            .expect("json")
    }

    /// Replace the config (pretty JSON and a newline, as lifeboat writes it).
    pub fn write_config(&self, v: &serde_json::Value) {
        let mut text = serde_json::to_vec_pretty(v).expect("json");
        text.push(b'\n');
        std::fs::write(self.dir.join("config"), text).expect("write config");
    }

    /// Store `bytes` in folder `dir` under their SHA-256; returns the name.
    pub fn put(&self, dir: &str, bytes: &[u8]) -> String {
        let name = hex::encode(Sha256::digest(bytes));
        let folder = if dir == "data" {
            self.dir.join("data").join(&name[..2])
        } else {
            self.dir.join(dir)
        };
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(folder.join(&name), bytes).expect("write");
        name
    }

    /// Names of the files in folder `dir`, sorted.
    pub fn files(&self, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join(dir))
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with(".tmp-"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Every file of folder `dir` (index, snapshots, state, locks) as the
    /// holder of `backup_key` reads it: opened with its metadata identity,
    /// the tag line stripped. (name, body), sorted by name.
    pub fn open_all(&self, dir: &str, backup_key: &Path) -> Vec<(String, Vec<u8>)> {
        let (_, identity) = backup_key_secrets(backup_key);
        self.files(dir)
            .into_iter()
            .map(|name| {
                let plain = open(&identity, &self.read(dir, &name));
                let body = match plain.first() {
                    Some(b'{') => plain,
                    _ => plain[65..].to_vec(),
                };
                (name, body)
            })
            .collect()
    }

    /// As a backup host (FORMAT.md, "Pack files" and "index/ files"): a
    /// pack holding `plain`, sealed to the data recipient, claimed to be
    /// blob `id` (kind `data`), with a tagged header, and an index file
    /// naming it whose name sorts before every other index file (so that
    /// readers meet this copy first). Returns the pack's name.
    pub fn plant_copy(&self, backup_key: &Path, id: &str, plain: &[u8]) -> String {
        let (dedup, _) = backup_key_secrets(backup_key);
        let key = file_key(&dedup);
        let config = self.config();
        let blob = seal(config["data_recipient"].as_str().expect("recipient"), plain);
        let entry = serde_json::json!({
            "id": id, "type": "data", "offset": 0, "length": blob.len(),
            "plain_length": plain.len(),
        });
        let header_json =
            serde_json::to_vec(&serde_json::json!({"version": 1, "blobs": [entry]})).expect("json");
        let mut message = b"pack-header\0".to_vec();
        message.extend_from_slice(&Sha256::digest(&blob));
        message.extend_from_slice(&header_json);
        let mut header_plain = hex::encode(hmac(&key, &[&message])).into_bytes();
        header_plain.push(b'\n');
        header_plain.extend_from_slice(&header_json);
        let metadata = config["metadata_recipient"].as_str().expect("recipient");
        let header = seal(metadata, &header_plain);
        let mut pack = blob;
        pack.extend_from_slice(&header);
        pack.extend_from_slice(&(header.len() as u32).to_le_bytes());
        pack.extend_from_slice(b"LBP1");
        let name = self.put("data", &pack);
        let index = serde_json::to_vec(&serde_json::json!({
            "version": 1, "packs": [{"id": name, "blobs": [entry]}]
        }))
        .expect("json");
        let first = self
            .files("index")
            .into_iter()
            .min()
            .expect("an index file");
        for _ in 0..200 {
            let sealed = seal(metadata, &tagged(&key, "index", &index));
            if hex::encode(Sha256::digest(&sealed)) < first {
                self.put("index", &sealed);
                return name;
            }
        }
        panic!("no index file name sorted first in 200 tries");
    }

    /// The raw bytes of `dir/name`.
    pub fn read(&self, dir: &str, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(dir).join(name)).expect("read")
    }
}
