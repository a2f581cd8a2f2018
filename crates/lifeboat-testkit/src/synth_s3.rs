//! A synthetic S3 bucket of any size, for scale tests and benchmarks: a
//! million keys cost nothing to hold because every object is computed from
//! its number. It answers what a backup and `rclone lsf` ask, as S3 does:
//!
//! - `ListObjectsV2` (`list-type=2`: `prefix`, `start-after`,
//!   `continuation-token`, `max-keys` up to 1000, `delimiter` with common
//!   prefixes) and `ListObjects` v1 (`marker`, `NextMarker`), keys in
//!   binary order;
//! - `GetObject` with `Range` and `If-Match` (206, 412), `HeadObject`,
//!   `HeadBucket`; 404 `NoSuchKey` for anything else.
//!
//! Object `i` has key `uploads/{i/1000:04}/{i:07}-scan.pdf`, 64 to 1087
//! bytes, and an MD5 ETag. [`SynthS3::next_generation`] changes a given
//! share of the objects (new bytes, ETag and Last-Modified), as a night of
//! uploads would (`POST /_synth/next` from another process). Requests are
//! counted by kind (`GET /_synth/counts`). Signatures are not checked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use md5::{Digest, Md5};

/// The bucket's shape: how many objects, and which change each generation.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Objects in the bucket.
    pub count: u64,
    /// Objects changed per generation, in thousandths.
    pub changed_per_mille: u64,
    /// Generations so far (0: as created).
    pub generation: u64,
}

/// Requests served, by kind.
#[derive(Debug, Default)]
pub struct Counts {
    pub lists: AtomicU64,
    pub gets: AtomicU64,
    pub heads: AtomicU64,
}

/// A running synthetic bucket.
pub struct SynthS3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The one bucket it serves.
    pub bucket: String,
    shape: Arc<Mutex<Shape>>,
    counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Clone)]
struct App {
    bucket: Arc<String>,
    shape: Arc<Mutex<Shape>>,
    counts: Arc<Counts>,
}

fn mix(i: u64, salt: u64) -> u64 {
    // splitmix64
    let mut z = i
        .wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of object `i`.
pub fn key(i: u64) -> String {
    format!("uploads/{:04}/{i:07}-scan.pdf", i / 1000)
}

fn index_of(key: &str) -> Option<u64> {
    let rest = key.strip_prefix("uploads/")?;
    let (dir, file) = rest.split_once('/')?;
    let i: u64 = file.strip_suffix("-scan.pdf")?.parse().ok()?;
    (dir.len() == 4 && dir.parse::<u64>().ok()? == i / 1000 && self::key(i) == key).then_some(i)
}

impl Shape {
    /// The generation object `i` last changed in.
    pub fn version(&self, i: u64) -> u64 {
        (1..=self.generation)
            .rev()
            .find(|g| mix(i, *g) % 1000 < self.changed_per_mille)
            .unwrap_or(0)
    }

    /// The bytes of object `i` as it is now.
    pub fn body(&self, i: u64) -> Vec<u8> {
        let v = self.version(i);
        let size = 64 + (mix(i, 0) % 1024) as usize;
        let line = format!("%PDF-1.4 scan {i} version {v} {:016x}\n", mix(i, v + 1000));
        line.bytes().cycle().take(size).collect()
    }

    fn etag(&self, body: &[u8]) -> String {
        hex::encode(Md5::digest(body))
    }

    /// Last-Modified of object `i`: its version's day.
    fn modified(&self, i: u64) -> chrono::DateTime<chrono::Utc> {
        let base = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("a date")
            .with_timezone(&chrono::Utc);
        base + chrono::Duration::days(self.version(i) as i64)
            + chrono::Duration::seconds((i % 86_400) as i64)
    }
}

impl SynthS3 {
    /// Serve `count` objects in `bucket`, `changed_per_mille` of them
    /// changing per generation.
    pub fn start(bucket: &str, count: u64, changed_per_mille: u64) -> SynthS3 {
        Self::start_on(bucket, count, changed_per_mille, 0)
    }

    /// The same on `port` (0: any free one).
    pub fn start_on(bucket: &str, count: u64, changed_per_mille: u64, port: u16) -> SynthS3 {
        let shape = Arc::new(Mutex::new(Shape {
            count,
            changed_per_mille,
            generation: 0,
        }));
        let counts = Arc::new(Counts::default());
        let app = App {
            bucket: Arc::new(bucket.to_string()),
            shape: shape.clone(),
            counts: counts.clone(),
        };
        let (endpoint, stop) =
            crate::serve_http(Router::new().fallback(handle).with_state(app), port);
        SynthS3 {
            endpoint,
            bucket: bucket.to_string(),
            shape,
            counts,
            stop: Some(stop),
        }
    }

    /// The bucket as it is now.
    pub fn shape(&self) -> Shape {
        *self.shape.lock().expect("shape")
    }

    /// A night of uploads: the next generation's share of objects changes.
    pub fn next_generation(&self) {
        self.shape.lock().expect("shape").generation += 1;
    }

    /// Objects from `count` on are deleted (or, if it grows, added).
    pub fn set_count(&self, count: u64) {
        self.shape.lock().expect("shape").count = count;
    }

    /// Requests so far: (lists, gets, heads).
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.counts.lists.load(Ordering::Relaxed),
            self.counts.gets.load(Ordering::Relaxed),
            self.counts.heads.load(Ordering::Relaxed),
        )
    }

    /// Block until the process is killed (the benchmark's server).
    pub fn wait(&self) -> ! {
        loop {
            std::thread::park();
        }
    }
}

impl Drop for SynthS3 {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn error(status: StatusCode, code: &str) -> Response {
    (
        status,
        [("content-type", "application/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>"),
    )
        .into_response()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The first object whose key is at least `k` (binary search: keys sort as
/// their numbers).
fn lower_bound(shape: &Shape, k: &str) -> u64 {
    let (mut lo, mut hi) = (0, shape.count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if key(mid).as_str() < k {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The smallest string greater than every string starting with `p`.
fn successor(p: &str) -> String {
    let mut b = p.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0x7f {
            b.push(last + 1);
            return String::from_utf8_lossy(&b).into_owned();
        }
    }
    "\u{10FFFF}".into()
}

async fn handle(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().trim_start_matches('/');
    // Control of a server in another process (the benchmark's).
    match (method.as_str(), path) {
        ("POST", "_synth/next") => {
            app.shape.lock().expect("shape").generation += 1;
            return StatusCode::OK.into_response();
        }
        ("GET", "_synth/counts") => {
            let c = &app.counts;
            return format!(
                "{{\"lists\":{},\"gets\":{},\"heads\":{}}}",
                c.lists.load(Ordering::Relaxed),
                c.gets.load(Ordering::Relaxed),
                c.heads.load(Ordering::Relaxed)
            )
            .into_response();
        }
        _ => {}
    }
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b.to_string(), percent_decode(k)),
        None => (path.to_string(), String::new()),
    };
    if bucket != *app.bucket {
        return error(StatusCode::NOT_FOUND, "NoSuchBucket");
    }
    let shape = *app.shape.lock().expect("shape");
    if key.is_empty() {
        if method == Method::HEAD {
            return StatusCode::OK.into_response();
        }
        if q.contains_key("location") {
            return (StatusCode::OK, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></LocationConstraint>").into_response();
        }
        app.counts.lists.fetch_add(1, Ordering::Relaxed);
        return list(&shape, &q);
    }
    let Some(i) = index_of(&key).filter(|i| *i < shape.count) else {
        return error(StatusCode::NOT_FOUND, "NoSuchKey");
    };
    let body = shape.body(i);
    let etag = shape.etag(&body);
    if let Some(m) = headers.get("if-match").and_then(|v| v.to_str().ok()) {
        if m.trim_matches('"') != etag {
            return error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
        }
    }
    let modified = shape
        .modified(i)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let common = [
        ("etag", format!("\"{etag}\"")),
        ("last-modified", modified),
        ("content-type", "application/pdf".to_string()),
        ("accept-ranges", "bytes".to_string()),
    ];
    if method == Method::HEAD {
        app.counts.heads.fetch_add(1, Ordering::Relaxed);
        let mut r = (StatusCode::OK, [("content-length", body.len().to_string())]).into_response();
        for (k, v) in common {
            r.headers_mut().insert(k, v.parse().expect("header value"));
        }
        return r;
    }
    app.counts.gets.fetch_add(1, Ordering::Relaxed);
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .map(|(a, b)| (a.parse::<usize>().ok(), b.parse::<usize>().ok()));
    let len = body.len();
    let mut r = match range {
        Some((Some(a), b)) if a < len || len == 0 => {
            let end = b.map_or(len, |b| (b + 1).min(len)).max(a);
            let part = body[a.min(len)..end].to_vec();
            let mut r = (StatusCode::PARTIAL_CONTENT, part).into_response();
            r.headers_mut().insert(
                "content-range",
                format!("bytes {a}-{}/{len}", end.saturating_sub(1))
                    .parse()
                    .expect("header value"),
            );
            r
        }
        Some((Some(_), _)) => return error(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange"),
        _ => (StatusCode::OK, body).into_response(),
    };
    for (k, v) in common {
        r.headers_mut().insert(k, v.parse().expect("header value"));
    }
    r
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn list(shape: &Shape, q: &std::collections::HashMap<String, String>) -> Response {
    let v2 = q.get("list-type").map(String::as_str) == Some("2");
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let delimiter = q.get("delimiter").cloned().unwrap_or_default();
    let max = q
        .get("max-keys")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(1000)
        .min(1000);
    // Where to start: after the token's, marker's or start-after's key.
    let after = if v2 {
        q.get("continuation-token")
            .or_else(|| q.get("start-after"))
            .cloned()
    } else {
        q.get("marker").cloned()
    }
    .unwrap_or_default();
    let mut i = lower_bound(shape, &prefix);
    if !after.is_empty() {
        i = i.max(lower_bound(shape, &format!("{after}\0")));
    }
    let mut contents = String::new();
    let mut prefixes = String::new();
    let mut n = 0;
    let mut last = String::new();
    while i < shape.count && n < max {
        let k = key(i);
        if !k.starts_with(&prefix) {
            break;
        }
        let rest = &k[prefix.len()..];
        if let Some(pos) = (!delimiter.is_empty())
            .then(|| rest.find(&delimiter))
            .flatten()
        {
            let cp = &k[..prefix.len() + pos + delimiter.len()];
            prefixes.push_str(&format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                xml_escape(cp)
            ));
            last = cp.to_string();
            i = lower_bound(shape, &successor(cp));
        } else {
            let body = shape.body(i);
            contents.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                xml_escape(&k),
                shape.modified(i).format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                shape.etag(&body),
                body.len()
            ));
            last = k;
            i += 1;
        }
        n += 1;
    }
    let truncated = i < shape.count && key(i).starts_with(&prefix);
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    xml.push_str(&format!(
        "<Name>{}</Name><Prefix>{}</Prefix><MaxKeys>{max}</MaxKeys><IsTruncated>{truncated}</IsTruncated>",
        "synthetic",
        xml_escape(&prefix)
    ));
    if !delimiter.is_empty() {
        xml.push_str(&format!(
            "<Delimiter>{}</Delimiter>",
            xml_escape(&delimiter)
        ));
    }
    if v2 {
        xml.push_str(&format!("<KeyCount>{n}</KeyCount>"));
        if truncated {
            xml.push_str(&format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                xml_escape(&last)
            ));
        }
    } else if truncated {
        xml.push_str(&format!("<NextMarker>{}</NextMarker>", xml_escape(&last)));
    }
    xml.push_str(&contents);
    xml.push_str(&prefixes);
    xml.push_str("</ListBucketResult>");
    (StatusCode::OK, [("content-type", "application/xml")], xml).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_their_numbers_and_parse_back() {
        for i in [0, 1, 999, 1000, 123_456, 999_999] {
            assert_eq!(index_of(&key(i)), Some(i));
            assert!(key(i) < key(i + 1));
        }
        assert_eq!(index_of("uploads/0001/0000999-scan.pdf"), None);
        let s = Shape {
            count: 5000,
            changed_per_mille: 10,
            generation: 0,
        };
        assert_eq!(lower_bound(&s, "uploads/0001/"), 1000);
        assert_eq!(lower_bound(&s, &successor("uploads/0001/")), 2000);
        let changed = |g| {
            let s = Shape { generation: g, ..s };
            (0..5000).filter(|i| s.version(*i) == g).count()
        };
        let n = changed(1);
        assert!((25..=75).contains(&n), "about 1% change: {n}");
        assert_eq!(s.body(7), s.body(7));
    }
}
