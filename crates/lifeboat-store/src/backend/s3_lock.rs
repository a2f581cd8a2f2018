//! S3 Object Lock on [`S3Backend`]: retention on every write, extending
//! it, and the versions a locked (so versioned) bucket keeps: listing,
//! purging and reviving them.

use aws_sdk_s3::types::{
    ObjectLockEnabled, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};
use aws_smithy_types::DateTime as SmithyTime;
use chrono::{DateTime, TimeZone, Utc};

use super::s3::{map_err, S3Backend};
use super::{FileKind, FileVersion, LockMode, Locking, Retention};
use crate::error::BackendError;

fn sdk_mode(m: LockMode) -> ObjectLockMode {
    match m {
        LockMode::Governance => ObjectLockMode::Governance,
        LockMode::Compliance => ObjectLockMode::Compliance,
    }
}

/// Percent-encode for an `x-amz-copy-source` (everything but unreserved
/// characters and `/`).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn to_chrono(t: &SmithyTime) -> DateTime<Utc> {
    Utc.timestamp_opt(t.secs(), t.subsec_nanos())
        .single()
        .unwrap_or_default()
}

impl S3Backend {
    /// The retention a write made now carries.
    pub(super) fn write_lock(&self) -> Option<(ObjectLockMode, SmithyTime)> {
        let (mode, secs) = (*self.retain.lock().ok()?)?;
        let until = Utc::now().timestamp() + secs as i64;
        Some((sdk_mode(mode), SmithyTime::from_secs(until)))
    }

    /// The bucket key of a path relative to the repository.
    fn full(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }
}

impl Locking for S3Backend {
    fn lock_enabled(&self) -> Result<bool, BackendError> {
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let shown = format!("s3://{bucket}");
        self.run(("object lock", &shown.clone()), async move {
            match client
                .get_object_lock_configuration()
                .bucket(&bucket)
                .send()
                .await
            {
                Ok(out) => Ok(out
                    .object_lock_configuration()
                    .and_then(|c| c.object_lock_enabled())
                    == Some(&ObjectLockEnabled::Enabled)),
                Err(e)
                    if e.as_service_error()
                        .and_then(|s| aws_sdk_s3::error::ProvideErrorMetadata::code(s))
                        == Some("ObjectLockConfigurationNotFoundError") =>
                {
                    Ok(false)
                }
                Err(e) => Err(map_err("object lock", &shown, e)),
            }
        })
    }

    fn retain_writes(&self, mode: LockMode, secs: u64) {
        if let Ok(mut r) = self.retain.lock() {
            *r = Some((mode, secs));
        }
    }

    fn retention(&self, kind: FileKind, name: &str) -> Result<Retention, BackendError> {
        super::check_name(kind, name)?;
        let key = self.key(kind, name);
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let k = key.clone();
        // HeadObject carries the retention (and needs only s3:GetObject;
        // moto 5.2.5 has no GetObjectRetention).
        self.run(("retention", &key), async move {
            match client.head_object().bucket(&bucket).key(&k).send().await {
                Ok(out) => Ok(Retention {
                    until: out.object_lock_retain_until_date().map(to_chrono),
                    mode: match out.object_lock_mode() {
                        Some(ObjectLockMode::Compliance) => Some(LockMode::Compliance),
                        Some(ObjectLockMode::Governance) => Some(LockMode::Governance),
                        _ => None,
                    },
                }),
                Err(e) => Err(map_err("retention", &k, e)),
            }
        })
    }

    fn extend(
        &self,
        kind: FileKind,
        name: &str,
        mode: LockMode,
        until: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        super::check_name(kind, name)?;
        let key = self.key(kind, name);
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let k = key.clone();
        self.run(("extend retention", &key), async move {
            client
                .put_object_retention()
                .bucket(&bucket)
                .key(&k)
                .retention(
                    ObjectLockRetention::builder()
                        .mode(match mode {
                            LockMode::Governance => ObjectLockRetentionMode::Governance,
                            LockMode::Compliance => ObjectLockRetentionMode::Compliance,
                        })
                        .retain_until_date(SmithyTime::from_secs(until.timestamp()))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_err("extend retention", &k, e))
        })
    }

    fn versions(&self) -> Result<Vec<FileVersion>, BackendError> {
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let shown = prefix.clone();
        self.run(("list versions", &shown), async move {
            let mut out = Vec::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let page = client
                    .list_object_versions()
                    .bucket(&bucket)
                    .prefix(&prefix)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(version_marker.clone())
                    .send()
                    .await
                    .map_err(|e| map_err("list versions", &prefix, e))?;
                let rel = |k: &str| k.strip_prefix(&prefix).unwrap_or(k).to_string();
                for v in page.versions() {
                    let (Some(k), Some(id)) = (v.key(), v.version_id()) else {
                        continue;
                    };
                    out.push(FileVersion {
                        path: rel(k),
                        version: id.to_string(),
                        modified: v.last_modified().map(to_chrono).unwrap_or_default(),
                        latest: v.is_latest().unwrap_or(false),
                        delete_marker: false,
                        etag: v.e_tag().map(|e| e.trim_matches('"').to_string()),
                    });
                }
                for m in page.delete_markers() {
                    let (Some(k), Some(id)) = (m.key(), m.version_id()) else {
                        continue;
                    };
                    out.push(FileVersion {
                        path: rel(k),
                        version: id.to_string(),
                        modified: m.last_modified().map(to_chrono).unwrap_or_default(),
                        latest: m.is_latest().unwrap_or(false),
                        delete_marker: true,
                        etag: None,
                    });
                }
                if page.is_truncated() != Some(true) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_string);
                version_marker = page.next_version_id_marker().map(str::to_string);
                if key_marker.is_none() {
                    break;
                }
            }
            Ok(out)
        })
    }

    fn read_version(&self, path: &str, version: &str) -> Result<Vec<u8>, BackendError> {
        let key = self.full(path);
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let (k, v) = (key.clone(), version.to_string());
        self.run(("read version", &key), async move {
            let out = client
                .get_object()
                .bucket(&bucket)
                .key(&k)
                .version_id(&v)
                .send()
                .await
                .map_err(|e| map_err("read version", &k, e))?;
            let body = out.body.collect().await.map_err(|e| {
                BackendError::new(
                    crate::error::BackendErrorKind::Other,
                    "read version",
                    &k,
                    format!("body: {e}"),
                )
            })?;
            Ok(body.into_bytes().to_vec())
        })
    }

    fn purge(&self, path: &str, version: &str) -> Result<(), BackendError> {
        let key = self.full(path);
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let (k, v) = (key.clone(), version.to_string());
        self.run(("purge", &key), async move {
            client
                .delete_object()
                .bucket(&bucket)
                .key(&k)
                .version_id(&v)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_err("purge", &k, e))
        })
    }

    fn revive(&self, path: &str, version: &str) -> Result<(), BackendError> {
        let key = self.full(path);
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let lock = self.write_lock();
        let (k, v) = (key.clone(), version.to_string());
        self.run(("revive", &key), async move {
            client
                .copy_object()
                .bucket(&bucket)
                .key(&k)
                .copy_source(format!(
                    "{}/{}?versionId={}",
                    encode(&bucket),
                    encode(&k),
                    encode(&v)
                ))
                .set_object_lock_mode(lock.as_ref().map(|l| l.0.clone()))
                .set_object_lock_retain_until_date(lock.as_ref().map(|l| l.1))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_err("revive", &k, e))
        })
    }
}
