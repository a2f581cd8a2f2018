//! A repository in any S3-compatible bucket (Cloudflare R2, AWS, Backblaze
//! B2, MinIO, ...), through aws-sdk-s3.
//!
//! R2 compatibility: path-style addressing, region `auto`, and request
//! checksums / response checksum validation only "when required" (R2 rejects
//! some of the flexible checksums the SDK sends by default). Integrity does
//! not depend on S3 checksums: every file is named by, and verified against,
//! its own SHA-256.

use std::future::Future;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use md5::{Digest, Md5};

use super::{Backend, FileInfo, FileKind};
use crate::error::{BackendError, BackendErrorKind, Error, Result};

/// Settings of an S3 repository. Anything left `None` is taken from the
/// standard AWS environment variables (`AWS_ENDPOINT_URL_S3`,
/// `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
#[derive(Clone, Default)]
pub struct S3Options {
    /// e.g. `https://ACCOUNT.r2.cloudflarestorage.com`.
    pub endpoint: Option<String>,
    /// `auto` for R2; defaults to `auto` with a custom endpoint, else `us-east-1`.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
    /// Virtual-hosted style instead of path style (path style is the default
    /// because it works everywhere, including R2 and local test servers).
    pub virtual_hosted_style: bool,
    /// Parallel transfers (default 4).
    pub connections: Option<usize>,
    /// Attempts per request before giving up (default 6, exponential backoff).
    pub max_attempts: Option<u32>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Files under `prefix` in a bucket.
pub struct S3Backend {
    pub(super) client: Client,
    pub(super) bucket: String,
    pub(super) prefix: String,
    endpoint: String,
    connections: usize,
    rt: tokio::runtime::Runtime,
    /// Object Lock retention every write carries (mode, seconds).
    pub(super) retain: std::sync::Mutex<Option<(super::LockMode, u64)>>,
}

impl S3Options {
    /// An S3 client with lifeboat's settings (R2-safe checksums, path style,
    /// retries with backoff, timeouts) and the endpoint it talks to. `what`
    /// names the bucket in errors. Sources use this for the buckets they
    /// back up, so every S3 conversation behaves the same.
    pub fn client(&self, what: &str) -> Result<(Client, Option<String>)> {
        let opts = self;
        let endpoint = opts
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        let region = opts
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| {
                if endpoint.is_some() {
                    "auto"
                } else {
                    "us-east-1"
                }
                .to_string()
            });
        let key_id = opts
            .access_key_id
            .clone()
            .or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret = opts
            .secret_access_key
            .clone()
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
        let (Some(key_id), Some(secret)) = (key_id, secret) else {
            return Err(Error::Invalid(format!(
                "no S3 credentials for {what}: set access_key_id and secret_access_key \
                 in the config, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )));
        };
        let token = opts
            .session_token
            .clone()
            .or_else(|| env("AWS_SESSION_TOKEN"));
        // A stalled answer is abandoned after this long and the request
        // retried (LIFEBOAT_S3_READ_TIMEOUT, seconds; default 60).
        let read_timeout = env("LIFEBOAT_S3_READ_TIMEOUT")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map_or(Duration::from_secs(60), Duration::from_secs_f64);
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(Credentials::new(key_id, secret, token, None, "lifeboat"))
            .force_path_style(!opts.virtual_hosted_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(opts.max_attempts.unwrap_or(6))
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(read_timeout)
                    .operation_attempt_timeout(Duration::from_secs(300))
                    .build(),
            );
        if let Some(ep) = &endpoint {
            builder = builder.endpoint_url(ep);
        }
        Ok((Client::from_conf(builder.build()), endpoint))
    }
}

impl S3Backend {
    /// Connect (lazily: nothing is sent until the first request).
    pub fn open(bucket: &str, prefix: &str, opts: &S3Options) -> Result<Self> {
        let (client, endpoint) = opts.client(&format!("s3://{bucket}"))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lifeboat-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the S3 client runtime", e))?;
        Ok(Self {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: endpoint.unwrap_or_else(|| "AWS".into()),
            connections: opts.connections.unwrap_or(4).max(1),
            rt,
            retain: std::sync::Mutex::new(None),
        })
    }

    pub(super) fn key(&self, kind: FileKind, name: &str) -> String {
        if self.prefix.is_empty() {
            kind.path(name)
        } else {
            format!("{}/{}", self.prefix, kind.path(name))
        }
    }

    /// Run a request on our runtime from any thread (including threads of
    /// another tokio runtime) and wait for it.
    pub(super) fn run<T: Send + 'static>(
        &self,
        what: (&'static str, &str),
        fut: impl Future<Output = Result<T, BackendError>> + Send + 'static,
    ) -> Result<T, BackendError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(BackendError::new(
                BackendErrorKind::Other,
                what.0,
                what.1,
                "the S3 client stopped",
            ))
        })
    }
}

pub(super) fn map_err<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    op: &'static str,
    key: &str,
    err: SdkError<E>,
) -> BackendError {
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.as_service_error().and_then(|e| e.code()).unwrap_or("");
    let kind = match (status, code) {
        // A missing bucket is a wrong location, not an absent file.
        (_, "NoSuchBucket") | (Some(401 | 403), _) => BackendErrorKind::Access,
        (Some(404), _) | (_, "NoSuchKey") | (_, "NotFound") => BackendErrorKind::NotFound,
        _ => BackendErrorKind::Other,
    };
    BackendError::new(kind, op, key, error_summary(&err))
}

/// An S3 error on one line, as an operator reads it: the service's status,
/// code and message (`HTTP 403, AccessDenied: Access Denied`), or what kind
/// of failure it was and its root cause (`could not reach the endpoint:
/// Connection refused (os error 111)`), never the SDK's debug structure.
pub fn error_summary<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &SdkError<E>,
) -> String {
    let status = err.raw_response().map(|r| r.status().as_u16());
    if let Some(service) = err.as_service_error() {
        let code = service.code().unwrap_or("");
        let message = service.message().unwrap_or("");
        let mut out = status.map(|s| format!("HTTP {s}")).unwrap_or_default();
        for part in [code, message] {
            if !part.is_empty() {
                out.push_str(if out.is_empty() {
                    ""
                } else if part == message && !code.is_empty() {
                    ": "
                } else {
                    ", "
                });
                out.push_str(part);
            }
        }
        return if out.is_empty() {
            "the service refused the request".into()
        } else {
            out
        };
    }
    let kind = match err {
        SdkError::TimeoutError(_) => "timed out",
        SdkError::DispatchFailure(_) => "could not reach the endpoint",
        SdkError::ResponseError(_) => "the answer could not be read",
        SdkError::ConstructionFailure(_) => "the request could not be built",
        _ => "failed",
    };
    let mut root: &dyn std::error::Error = err;
    while let Some(next) = root.source() {
        root = next;
    }
    let cause = root.to_string();
    match (
        status,
        std::ptr::eq(root as *const _ as *const u8, err as *const _ as *const u8),
    ) {
        (Some(s), true) => format!("HTTP {s}: {kind}"),
        (_, true) => kind.to_string(),
        (Some(s), false) => format!("HTTP {s}: {kind}: {cause}"),
        (None, false) => format!("{kind}: {cause}"),
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        format!("s3://{}/{} at {}", self.bucket, self.prefix, self.endpoint)
    }

    fn connections(&self) -> usize {
        self.connections
    }

    fn locking(&self) -> Option<&dyn super::Locking> {
        Some(self)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError> {
        let base = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let prefix = match kind {
            FileKind::Config => format!("{base}config"),
            _ => format!("{base}{}/", kind.dir()),
        };
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let shown = prefix.clone();
        self.run(("list", &shown), async move {
            let mut out = Vec::new();
            let mut pages = client
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(&prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| map_err("list", &prefix, e))?;
                for obj in page.contents() {
                    let Some(key) = obj.key() else { continue };
                    let name = key.rsplit('/').next().unwrap_or(key);
                    if kind == FileKind::Config && key != prefix {
                        continue;
                    }
                    // A folder marker (`data/`, made by a console) is no file.
                    if name.is_empty() {
                        continue;
                    }
                    out.push(FileInfo {
                        name: name.to_string(),
                        size: obj.size().unwrap_or(0).max(0) as u64,
                        modified: obj.last_modified().and_then(|t| {
                            chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
                        }),
                    });
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError> {
        super::check_name(kind, name)?;
        self.get(self.key(kind, name), None)
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        super::check_name(kind, name)?;
        if length == 0 {
            return Ok(Vec::new());
        }
        let key = self.key(kind, name);
        let data = self.get(
            key.clone(),
            Some(format!("bytes={}-{}", offset, offset + length - 1)),
        )?;
        if data.len() as u64 != length {
            return Err(BackendError::new(
                BackendErrorKind::Other,
                "read",
                key,
                format!("asked for {length} bytes, got {}", data.len()),
            ));
        }
        Ok(data)
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.write_shared(kind, name, std::sync::Arc::new(data.to_vec()))
    }

    fn write_shared(
        &self,
        kind: FileKind,
        name: &str,
        data: std::sync::Arc<Vec<u8>>,
    ) -> Result<(), BackendError> {
        super::check_name(kind, name)?;
        let key = self.key(kind, name);
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let md5 = Md5::digest(data.as_slice());
        let content_md5 = aws_smithy_types::base64::encode(md5);
        let body = bytes::Bytes::from_owner(SharedBuf(data));
        let k = key.clone();
        let lock = self.write_lock();
        self.run(("write", &key), async move {
            // The SDK retries transient failures itself. These two mean the
            // bytes were damaged on the way: the server refused them
            // (BadDigest, checked against Content-MD5) or stored something
            // else (its ETag is not our MD5). Send them again.
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let sent = client
                    .put_object()
                    .bucket(&bucket)
                    .key(&k)
                    .content_md5(&content_md5)
                    .set_object_lock_mode(lock.as_ref().map(|l| l.0.clone()))
                    .set_object_lock_retain_until_date(lock.as_ref().map(|l| l.1))
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await;
                let problem = match sent {
                    Ok(out) => match etag_mismatch(out.e_tag(), &md5) {
                        None => return Ok(()),
                        Some(p) => p,
                    },
                    Err(e) if e.as_service_error().and_then(|e| e.code()) == Some("BadDigest") => {
                        "the server found the body did not match its Content-MD5".to_string()
                    }
                    Err(e) => return Err(map_err("write", &k, e)),
                };
                if attempt >= 4 {
                    return Err(BackendError::new(
                        BackendErrorKind::Other,
                        "write",
                        &k,
                        format!(
                            "{problem}, {attempt} times: the upload is corrupted on the way \
                             (check proxies between this host and the store)"
                        ),
                    ));
                }
                tracing::warn!("write {k}: {problem} (attempt {attempt}, sending it again)");
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
        })
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        super::check_name(kind, name)?;
        let key = self.key(kind, name);
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let k = key.clone();
        self.run(("remove", &key), async move {
            match client.delete_object().bucket(bucket).key(&k).send().await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let e = map_err("remove", &k, e);
                    if e.is_not_found() {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
            }
        })
    }
}

/// Whether an upload's ETag shows the server stored other bytes than were
/// sent: `Some(why)` when the ETag is a plain MD5 (a single-part upload
/// without SSE-KMS, on AWS, R2, MinIO, B2, ...) that differs from `sent_md5`;
/// `None` when it matches or is not an MD5 (multipart, SSE-KMS), where the
/// SHA-256 that names every stored file is the check.
pub fn etag_mismatch(etag: Option<&str>, sent_md5: &[u8]) -> Option<String> {
    let got = etag.unwrap_or("").trim_matches('"');
    let is_md5 = got.len() == 32 && got.bytes().all(|b| b.is_ascii_hexdigit());
    let want = hex::encode(sent_md5);
    (is_md5 && !got.eq_ignore_ascii_case(&want))
        .then(|| format!("the server stored MD5 {got}, lifeboat sent {want}"))
}

/// Lends a pooled buffer to the SDK without copying it.
struct SharedBuf(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl S3Backend {
    fn get(&self, key: String, range: Option<String>) -> Result<Vec<u8>, BackendError> {
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let k = key.clone();
        self.run(("read", &key), async move {
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                match Self::get_once(&client, &bucket, &k, range.clone()).await {
                    Err(e) if e.kind == BackendErrorKind::Other && attempt < 4 => {
                        tracing::warn!("read {k}: {} (attempt {attempt}, retrying)", e.message);
                        tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                    }
                    other => return other,
                }
            }
        })
    }

    async fn get_once(
        client: &Client,
        bucket: &str,
        k: &str,
        range: Option<String>,
    ) -> Result<Vec<u8>, BackendError> {
        {
            let resp = client
                .get_object()
                .bucket(bucket)
                .key(k)
                .set_range(range)
                .send()
                .await
                .map_err(|e| map_err("read", k, e))?;
            let body = resp.body.collect().await.map_err(|e| {
                BackendError::new(BackendErrorKind::Other, "read", k, format!("body: {e}"))
            })?;
            Ok(body.into_bytes().to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_md5_etag_that_differs_is_a_mismatch() {
        // MD5("The quick brown fox jumps over the lazy dog")
        let md5 = Md5::digest(b"The quick brown fox jumps over the lazy dog");
        assert_eq!(hex::encode(md5), "9e107d9d372bb6826bd81d3542a419d6");
        assert_eq!(
            etag_mismatch(Some("\"9e107d9d372bb6826bd81d3542a419d6\""), &md5),
            None
        );
        assert_eq!(
            etag_mismatch(Some("9E107D9D372BB6826BD81D3542A419D6"), &md5),
            None
        );
        let other = etag_mismatch(Some("\"00107d9d372bb6826bd81d3542a419d6\""), &md5);
        assert!(other.is_some_and(|w| w.contains("00107d9d") && w.contains("9e107d9d")));
        // Multipart and SSE-KMS ETags are not MD5s of the body: no verdict.
        assert_eq!(
            etag_mismatch(Some("\"9e107d9d372bb6826bd81d3542a419d6-3\""), &md5),
            None
        );
        assert_eq!(etag_mismatch(None, &md5), None);
    }
}
