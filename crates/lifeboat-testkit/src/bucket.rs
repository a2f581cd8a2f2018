//! A plain S3 client for tests: fill a bucket with generated objects,
//! change and delete some, read objects back to compare.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::data::Rng;

/// One generated object: its bytes come from `seed`, so a test can
/// regenerate them instead of keeping them in memory.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub key: String,
    pub size: u64,
    pub seed: u64,
    pub content_type: String,
    pub metadata: BTreeMap<String, String>,
}

impl ObjectSpec {
    /// The content: a text-ish head (PDF-like) and random bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut rng = Rng::new(self.seed);
        let mut v = vec![0u8; self.size as usize];
        rng.fill(&mut v);
        let head = format!("%PDF-1.7 {}\n", self.key);
        let n = head.len().min(v.len());
        v[..n].copy_from_slice(&head.as_bytes()[..n]);
        v
    }

    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.bytes()))
    }
}

/// Keys with spaces, unicode, `+`, `&`, `=`, and deep folders.
const NAMES: [&str; 8] = [
    "scans/2024 march/röntgen naïve {}.pdf",
    "patients/{}/consent form.pdf",
    "invoices/2025/INV-{}+copy.pdf",
    "x-rays/🦷 molar {}.png",
    "lab/results & notes {}.txt",
    "a=b/{}.bin",
    "letters/日本語 {}.docx",
    "misc/{}",
];

/// `n` objects, sizes from 0 B up to `max_size` (most small, a few large),
/// deterministic for `seed`.
pub fn generate(n: usize, seed: u64, max_size: u64) -> Vec<ObjectSpec> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let key = NAMES[i % NAMES.len()].replace("{}", &format!("{i:05}"));
        let size = match i {
            0 => 0,
            1 => max_size,
            _ if i % 997 == 2 => (4 << 20) + rng.below(8 << 20),
            _ if i % 97 == 3 => (1 << 20) + rng.below(2 << 20),
            _ => rng.below(16 << 10),
        };
        let content_type = match i % 4 {
            0 => "application/pdf",
            1 => "image/png",
            2 => "text/plain; charset=utf-8",
            _ => "application/octet-stream",
        };
        let mut metadata = BTreeMap::new();
        if i % 3 == 0 {
            metadata.insert("patient-id".to_string(), format!("{}", 1000 + i));
            metadata.insert("uploaded-by".to_string(), "dr-ana".to_string());
        }
        out.push(ObjectSpec {
            key,
            size: size.min(max_size),
            seed: seed ^ (i as u64 + 1).wrapping_mul(0x51_7CC1_B727_220A),
            content_type: content_type.to_string(),
            metadata,
        });
    }
    out
}

/// An S3 client against a test server.
pub struct S3Client {
    client: aws_sdk_s3::Client,
    rt: tokio::runtime::Runtime,
}

/// What a GET returned.
pub struct Fetched {
    pub data: Vec<u8>,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub etag: String,
}

impl S3Client {
    pub fn new(endpoint: &str) -> Self {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "testing",
                "testing-secret",
                None,
                None,
                "test",
            ))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build();
        S3Client {
            client: aws_sdk_s3::Client::from_conf(conf),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime"),
        }
    }

    /// Upload `objects`, 16 at a time.
    pub fn put_all(&self, bucket: &str, objects: &[ObjectSpec]) {
        self.rt.block_on(async {
            let mut puts = futures_util::stream::iter(objects.iter().map(|o| {
                let c = self.client.clone();
                let meta: HashMap<String, String> = o.metadata.clone().into_iter().collect();
                async move {
                    c.put_object()
                        .bucket(bucket)
                        .key(&o.key)
                        .content_type(&o.content_type)
                        .set_metadata((!meta.is_empty()).then_some(meta))
                        .body(ByteStream::from(o.bytes()))
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("put {}: {e:?}", o.key));
                }
            }))
            .buffer_unordered(16);
            while puts.next().await.is_some() {}
        });
    }

    pub fn get(&self, bucket: &str, key: &str) -> Fetched {
        self.rt.block_on(async {
            let o = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
            let content_type = o.content_type().map(str::to_string);
            let metadata = o
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            let etag = o.e_tag().unwrap_or("").trim_matches('"').to_string();
            let data = o.body.collect().await.expect("body").into_bytes().to_vec();
            Fetched {
                data,
                content_type,
                metadata,
                etag,
            }
        })
    }

    /// `(SHA-256, content type, metadata)` of each of `keys`, read 16 at a time.
    pub fn describe_all(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Vec<(String, Option<String>, BTreeMap<String, String>)> {
        self.rt.block_on(async {
            futures_util::stream::iter(keys.iter().map(|k| {
                let c = self.client.clone();
                async move {
                    let o = c
                        .get_object()
                        .bucket(bucket)
                        .key(k)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("get {k}: {e:?}"));
                    let ct = o.content_type().map(str::to_string);
                    let meta = o
                        .metadata()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default();
                    let data = o.body.collect().await.expect("body").into_bytes();
                    (hex::encode(Sha256::digest(&data)), ct, meta)
                }
            }))
            .buffered(16)
            .collect()
            .await
        })
    }

    /// `(key, size)` of every object, sorted.
    pub fn list(&self, bucket: &str) -> Vec<(String, u64)> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .into_paginator()
                .send();
            while let Some(p) = pages.next().await {
                for o in p.expect("list").contents() {
                    out.push((
                        o.key().unwrap_or("").to_string(),
                        o.size().unwrap_or(0) as u64,
                    ));
                }
            }
            out.sort();
            out
        })
    }

    /// Create a bucket with S3 Object Lock enabled (so versioned).
    pub fn create_locked_bucket(&self, bucket: &str) {
        self.rt
            .block_on(
                self.client
                    .create_bucket()
                    .bucket(bucket)
                    .object_lock_enabled_for_bucket(true)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("create locked bucket {bucket}: {e:?}"));
    }

    /// The retention end of a key's current version, if any.
    pub fn retention(&self, bucket: &str, key: &str) -> Option<i64> {
        self.rt.block_on(async {
            let out = self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .ok()?;
            out.object_lock_retain_until_date().map(|t| t.secs())
        })
    }

    /// `(key, version id, is latest, is a delete marker)` of every version.
    pub fn versions(&self, bucket: &str) -> Vec<(String, String, bool, bool)> {
        self.rt.block_on(async {
            let out = self
                .client
                .list_object_versions()
                .bucket(bucket)
                .send()
                .await
                .expect("list versions");
            let mut v: Vec<_> = out
                .versions()
                .iter()
                .map(|o| {
                    (
                        o.key().unwrap_or("").to_string(),
                        o.version_id().unwrap_or("").to_string(),
                        o.is_latest().unwrap_or(false),
                        false,
                    )
                })
                .chain(out.delete_markers().iter().map(|m| {
                    (
                        m.key().unwrap_or("").to_string(),
                        m.version_id().unwrap_or("").to_string(),
                        m.is_latest().unwrap_or(false),
                        true,
                    )
                }))
                .collect();
            v.sort();
            v
        })
    }

    /// Delete one version for good; the service's error code if refused.
    pub fn delete_version(&self, bucket: &str, key: &str, version: &str) -> Result<(), String> {
        self.rt.block_on(async {
            self.client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .version_id(version)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                        .unwrap_or("?")
                        .to_string()
                })
        })
    }

    /// Write `data` over `key` (a new version on a versioned bucket).
    pub fn put(&self, bucket: &str, key: &str, data: &[u8]) {
        self.rt
            .block_on(
                self.client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(data.to_vec().into())
                    .send(),
            )
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    pub fn delete(&self, bucket: &str, keys: &[String]) {
        self.rt.block_on(async {
            let mut dels = futures_util::stream::iter(keys.iter().map(|k| {
                let c = self.client.clone();
                async move {
                    c.delete_object()
                        .bucket(bucket)
                        .key(k)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("delete {k}: {e:?}"));
                }
            }))
            .buffer_unordered(16);
            while dels.next().await.is_some() {}
        });
    }
}

/// Give every `medical_documents` row on R2 of database `db` an object in
/// `bucket` (deterministic content, up to `max_bytes`) and set the row's
/// sha256 and size to match: rows and objects consistent, as in production.
/// Returns the number of objects and their bytes.
pub fn upload_documents(
    db: &str,
    endpoint: &str,
    bucket: &str,
    max_bytes: u64,
) -> Result<(usize, u64), String> {
    let rows = crate::mariadb::sql(
        Some(db),
        "SELECT id, storage_key FROM medical_documents WHERE storage_provider = 'r2' ORDER BY id",
    );
    let mut objects = Vec::new();
    let mut sql = String::from("START TRANSACTION;\n");
    for line in rows.lines() {
        let Some((id, key)) = line.split_once('\t') else {
            continue;
        };
        let id: u64 = id.parse().unwrap_or(0);
        let size = (id * 7919) % max_bytes.max(1);
        let o = ObjectSpec {
            key: key.to_string(),
            size,
            seed: id,
            content_type: "application/pdf".into(),
            metadata: Default::default(),
        };
        sql.push_str(&format!(
            "UPDATE medical_documents SET sha256 = '{}', size_bytes = {size} WHERE id = {id};\n",
            o.sha256()
        ));
        objects.push(o);
    }
    sql.push_str("COMMIT;\n");
    let (ok, err) = crate::mariadb::run_script(db, sql.as_bytes());
    if !ok {
        return Err(format!("updating medical_documents: {err}"));
    }
    S3Client::new(endpoint).put_all(bucket, &objects);
    Ok((objects.len(), objects.iter().map(|o| o.size).sum()))
}
