//! An S3-compatible bucket (Cloudflare R2 first) as a source and as a
//! restore target: paged listing, ranged reads pinned to an ETag, uploads
//! whose ETags are checked against the MD5 of what was sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::{ByteStream, DateTimeFormat};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use lifeboat_store::backend::s3::etag_mismatch;
use lifeboat_store::backend::S3Options;
use md5::{Digest, Md5};

use crate::error::{Error, Result};
use crate::meta::{Headers, Listed};

/// Set the headers and user metadata to restore on a PutObject or
/// CreateMultipartUpload builder (distinct types with the same setters).
macro_rules! with_headers {
    ($builder:expr, $h:expr) => {{
        let h: &Headers = $h;
        $builder
            .set_content_type(h.content_type.clone())
            .set_content_encoding(h.content_encoding.clone())
            .set_content_disposition(h.content_disposition.clone())
            .set_content_language(h.content_language.clone())
            .set_cache_control(h.cache_control.clone())
            .set_metadata(meta_map(h))
    }};
}

/// Which bucket, and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct BucketOptions {
    /// Bucket name.
    pub bucket: String,
    /// Only keys under this prefix (empty: the whole bucket).
    pub prefix: String,
    /// Endpoint, region, credentials, parallel transfers.
    pub s3: S3Options,
}

/// Requests made, for reports and tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// ListObjectsV2 pages.
    pub lists: AtomicU64,
    /// GetObject requests (one per range).
    pub gets: AtomicU64,
    /// HeadObject requests.
    pub heads: AtomicU64,
    /// PutObject and UploadPart requests.
    pub puts: AtomicU64,
}

/// A connected bucket.
pub struct Bucket {
    pub(crate) remote: Remote,
    pub(crate) prefix: String,
    endpoint: Option<String>,
    pub(crate) connections: usize,
    pub(crate) rt: tokio::runtime::Runtime,
}

/// The part of a bucket that requests need; cheap to clone into tasks.
#[derive(Clone)]
pub(crate) struct Remote {
    pub(crate) client: Client,
    pub(crate) bucket: String,
    pub(crate) counters: Arc<Counters>,
}

/// Outcome of a ranged read.
pub(crate) enum Fetched {
    /// The bytes, and the headers when the range started at 0.
    Data(bytes::Bytes, Option<Headers>),
    /// The object no longer exists.
    Gone,
    /// The object's ETag is no longer the listed one.
    Changed,
}

/// Attempts of a ranged read whose body broke off (the SDK retries
/// failed requests itself, but not a body cut short).
const BODY_ATTEMPTS: u32 = 4;

fn status<E>(e: &SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

pub(crate) fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

fn headers_of(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    content_disposition: Option<&str>,
    content_language: Option<&str>,
    cache_control: Option<&str>,
    metadata: Option<&HashMap<String, String>>,
) -> Headers {
    Headers {
        content_type: content_type.map(str::to_string),
        content_encoding: content_encoding.map(str::to_string),
        content_disposition: content_disposition.map(str::to_string),
        content_language: content_language.map(str::to_string),
        cache_control: cache_control.map(str::to_string),
        metadata: metadata
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_lowercase(), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Listing pages fetched ahead of the one being worked on.
const LIST_AHEAD: usize = 4;

/// A bucket listing as it arrives: see [`Bucket::listing`].
pub(crate) struct Pages {
    rx: tokio::sync::mpsc::Receiver<Result<Vec<Listed>>>,
    page: std::vec::IntoIter<Listed>,
    last: Option<String>,
}

impl Iterator for Pages {
    type Item = Result<Listed>;

    fn next(&mut self) -> Option<Result<Listed>> {
        loop {
            if let Some(o) = self.page.next() {
                // A key listed twice (across pages of a listing that moved)
                // is one object.
                if self.last.as_deref() == Some(o.key.as_str()) {
                    continue;
                }
                self.last = Some(o.key.clone());
                return Some(Ok(o));
            }
            match self.rx.blocking_recv()? {
                Ok(page) => self.page = page.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Bucket {
    /// Connect (lazily: nothing is sent until the first request).
    pub fn open(opts: &BucketOptions) -> Result<Self> {
        if opts.bucket.len() < 3 {
            return Err(Error::Invalid(format!(
                "bucket name {:?} is too short: S3 bucket names have 3 to 63 characters",
                opts.bucket
            )));
        }
        let (client, endpoint) = opts.s3.client(&format!("s3://{}", opts.bucket))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lifeboat-objects")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("starting the S3 client runtime: {e}")))?;
        Ok(Bucket {
            remote: Remote {
                client,
                bucket: opts.bucket.clone(),
                counters: Default::default(),
            },
            prefix: opts.prefix.clone(),
            endpoint,
            connections: opts.s3.connections.unwrap_or(8).max(1),
            rt,
        })
    }

    /// `s3://bucket/prefix at endpoint`: what the state and facts are keyed by.
    pub fn location(&self) -> String {
        format!(
            "s3://{}/{} at {}",
            self.remote.bucket,
            self.prefix,
            self.endpoint.as_deref().unwrap_or("AWS")
        )
    }

    /// Requests made so far.
    pub fn counters(&self) -> &Counters {
        &self.remote.counters
    }

    /// Whether `other` is this bucket with an overlapping prefix.
    pub fn overlaps(&self, other: &Bucket) -> bool {
        self.remote.bucket == other.remote.bucket
            && self.endpoint == other.endpoint
            && (self.prefix.starts_with(&other.prefix) || other.prefix.starts_with(&self.prefix))
    }

    /// Every object under the prefix, sorted by key. Any failed page fails
    /// the whole listing: a partial list must never look like deletions.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut out = self.listing().collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.dedup_by(|a, b| a.key == b.key);
        Ok(out)
    }

    /// Every object under the prefix in the server's (key) order, page by
    /// page: a few pages are fetched ahead while the caller works. A failed
    /// page ends the listing with its error.
    pub(crate) fn listing(&self) -> Pages {
        let (tx, rx) = tokio::sync::mpsc::channel(LIST_AHEAD);
        let r = self.remote.clone();
        let prefix = self.prefix.clone();
        self.rt.spawn(async move {
            let mut pages = r
                .client
                .list_objects_v2()
                .bucket(&r.bucket)
                .prefix(&prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                r.counters.lists.fetch_add(1, Ordering::Relaxed);
                let page = match page {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(r.sdk_error("listing", &prefix, e))).await;
                        return;
                    }
                };
                let objects = page
                    .contents()
                    .iter()
                    .filter_map(|obj| {
                        Some(Listed {
                            key: obj.key()?.to_string(),
                            size: obj.size().unwrap_or(0).max(0) as u64,
                            etag: unquote(obj.e_tag().unwrap_or("")),
                            last_modified: obj
                                .last_modified()
                                .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok()),
                        })
                    })
                    .collect();
                if tx.send(Ok(objects)).await.is_err() {
                    return;
                }
            }
        });
        Pages {
            rx,
            page: Vec::new().into_iter(),
            last: None,
        }
    }

    /// Whether nothing is stored under the prefix.
    pub fn is_empty(&self) -> Result<bool> {
        self.rt.block_on(async {
            let r = &self.remote;
            let page = r
                .client
                .list_objects_v2()
                .bucket(&r.bucket)
                .prefix(&self.prefix)
                .max_keys(1)
                .send()
                .await
                .map_err(|e| r.sdk_error("listing", &self.prefix, e))?;
            Ok(page.contents().is_empty())
        })
    }

    /// The key an object of the source gets in this (target) bucket.
    pub(crate) fn target_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl Remote {
    fn what(&self, op: &str, key: &str) -> String {
        format!("{op} s3://{}/{key}", self.bucket)
    }

    fn sdk_error<
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    >(
        &self,
        op: &str,
        key: &str,
        e: SdkError<E>,
    ) -> Error {
        let hint = match status(&e) {
            Some(401 | 403) => {
                " (check access_key_id / secret_access_key and that the token may read this bucket)"
            }
            Some(404) if key.is_empty() => " (check the bucket name and endpoint)",
            _ => "",
        };
        Error::S3 {
            what: self.what(op, key),
            detail: format!("{}{hint}", lifeboat_store::backend::s3::error_summary(&e)),
        }
    }

    /// Read `len` bytes at `start` of `key`, only if its ETag is still `etag`.
    pub(crate) async fn get_range(
        &self,
        key: &str,
        etag: &str,
        start: u64,
        len: u64,
    ) -> Result<Fetched> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.counters.gets.fetch_add(1, Ordering::Relaxed);
            let mut req = self.client.get_object().bucket(&self.bucket).key(key);
            if !etag.is_empty() {
                req = req.if_match(format!("\"{etag}\""));
            }
            if len > 0 {
                req = req.range(format!("bytes={}-{}", start, start + len - 1));
            }
            let out = match req.send().await {
                Ok(o) => o,
                Err(e) => {
                    return match status(&e) {
                        Some(404) => Ok(Fetched::Gone),
                        Some(412) => Ok(Fetched::Changed),
                        _ => Err(self.sdk_error("reading", key, e)),
                    }
                }
            };
            let headers = (start == 0).then(|| {
                headers_of(
                    out.content_type(),
                    out.content_encoding(),
                    out.content_disposition(),
                    out.content_language(),
                    out.cache_control(),
                    out.metadata(),
                )
            });
            match out.body.collect().await {
                Ok(body) => {
                    let data = body.into_bytes();
                    if data.len() as u64 != len {
                        return Err(Error::S3 {
                            what: self.what("reading", key),
                            detail: format!("asked for {len} bytes at {start}, got {}", data.len()),
                        });
                    }
                    return Ok(Fetched::Data(data, headers));
                }
                Err(e) if attempt < BODY_ATTEMPTS => {
                    tracing::warn!(
                        "{}: the response broke off ({e}); retrying",
                        self.what("reading", key)
                    );
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => {
                    return Err(Error::S3 {
                        what: self.what("reading", key),
                        detail: format!("the response broke off {attempt} times: {e}"),
                    })
                }
            }
        }
    }

    /// Current size, ETag and headers of `key`; `None` if it is gone.
    pub(crate) async fn head(&self, key: &str) -> Result<Option<(Listed, Headers)>> {
        self.counters.heads.fetch_add(1, Ordering::Relaxed);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some((
                Listed {
                    key: key.to_string(),
                    size: o.content_length().unwrap_or(0).max(0) as u64,
                    etag: unquote(o.e_tag().unwrap_or("")),
                    last_modified: o
                        .last_modified()
                        .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok()),
                },
                headers_of(
                    o.content_type(),
                    o.content_encoding(),
                    o.content_disposition(),
                    o.content_language(),
                    o.cache_control(),
                    o.metadata(),
                ),
            ))),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.sdk_error("reading", key, e)),
        }
    }
}

/// Uploads one object: a single PUT when it fits in one part, multipart
/// otherwise. Every ETag the server returns is compared with the MD5 of
/// the bytes sent, so a restore knows the bucket holds exactly them.
pub(crate) struct Upload<'b> {
    bucket: &'b Bucket,
    key: String,
    headers: Headers,
    part_size: usize,
    buf: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl<'b> Upload<'b> {
    pub fn new(bucket: &'b Bucket, key: String, headers: Headers, part_size: usize) -> Self {
        Upload {
            bucket,
            key,
            headers,
            part_size,
            buf: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
        }
    }

    fn check_etag(&self, got: Option<&str>, data: &[u8], what: &str) -> Result<()> {
        match etag_mismatch(got, &Md5::digest(data)) {
            None => Ok(()),
            Some(why) => Err(Error::Mismatch(format!(
                "{}: {what}: {why}",
                self.bucket.remote.what("writing", &self.key)
            ))),
        }
    }

    fn flush_part(&mut self) -> Result<()> {
        let b = self.bucket;
        let data = std::mem::take(&mut self.buf);
        let number = self.parts.len() as i32 + 1;
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let h = &self.headers;
                let create = b
                    .remote
                    .client
                    .create_multipart_upload()
                    .bucket(&b.remote.bucket)
                    .key(&self.key);
                let out =
                    b.rt.block_on(with_headers!(create, h).send())
                        .map_err(|e| b.remote.sdk_error("starting an upload of", &self.key, e))?;
                let id = out.upload_id().unwrap_or_default().to_string();
                self.upload_id = Some(id.clone());
                id
            }
        };
        b.remote.counters.puts.fetch_add(1, Ordering::Relaxed);
        let out =
            b.rt.block_on(
                b.remote
                    .client
                    .upload_part()
                    .bucket(&b.remote.bucket)
                    .key(&self.key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(data.clone()))
                    .send(),
            )
            .map_err(|e| b.remote.sdk_error("uploading a part of", &self.key, e))?;
        self.check_etag(out.e_tag(), &data, &format!("part {number}"))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    /// Add bytes (uploading full parts as they fill).
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let mut data = data;
        while !data.is_empty() {
            // A full buffer is sent only once more bytes come, so an
            // object of exactly one part is a single PUT.
            if self.buf.len() >= self.part_size {
                self.flush_part()?;
            }
            let n = (self.part_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    /// Complete the object.
    pub fn finish(mut self) -> Result<()> {
        let b = self.bucket;
        if self.upload_id.is_none() {
            let h = &self.headers;
            b.remote.counters.puts.fetch_add(1, Ordering::Relaxed);
            let put = b
                .remote
                .client
                .put_object()
                .bucket(&b.remote.bucket)
                .key(&self.key);
            let out =
                b.rt.block_on(
                    with_headers!(put, h)
                        .body(ByteStream::from(self.buf.clone()))
                        .send(),
                )
                .map_err(|e| b.remote.sdk_error("writing", &self.key, e))?;
            return self.check_etag(out.e_tag(), &self.buf, "the object");
        }
        if !self.buf.is_empty() {
            self.flush_part()?;
        }
        let upload_id = self.upload_id.take().unwrap_or_default();
        b.rt.block_on(
            b.remote
                .client
                .complete_multipart_upload()
                .bucket(&b.remote.bucket)
                .key(&self.key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(std::mem::take(&mut self.parts)))
                        .build(),
                )
                .send(),
        )
        .map_err(|e| b.remote.sdk_error("completing the upload of", &self.key, e))?;
        Ok(())
    }
}

impl Drop for Upload<'_> {
    /// An upload that did not complete is aborted, so no part lingers
    /// (and costs storage) in the target bucket.
    fn drop(&mut self) {
        if let Some(id) = self.upload_id.take() {
            let b = self.bucket;
            let _ = b.rt.block_on(
                b.remote
                    .client
                    .abort_multipart_upload()
                    .bucket(&b.remote.bucket)
                    .key(&self.key)
                    .upload_id(id)
                    .send(),
            );
        }
    }
}

fn meta_map(h: &Headers) -> Option<HashMap<String, String>> {
    (!h.metadata.is_empty()).then(|| h.metadata.clone().into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_unquoted() {
        assert_eq!(unquote("\"abc\""), "abc");
    }
}
