//! A small client for Render's REST API (`https://api.render.com/v1`):
//! Bearer authentication, cursor paging, and retries that honour
//! `Retry-After` on 429 and back off on 5xx and transport errors.
//!
//! The API key is only ever put in the `Authorization` header; it never
//! appears in an error, a log line or a URL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lifeboat_store::secrecy::{ExposeSecret, SecretString};
use reqwest::blocking::{Client as Http, Response};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::error::{Error, Result};

/// Render's API, the default `api_url`.
pub const DEFAULT_API_URL: &str = "https://api.render.com/v1";

/// How to reach Render and what to back up.
#[derive(Clone)]
pub struct RenderOptions {
    /// Base URL of the API (tests point it at a fake).
    pub api_url: String,
    /// The API key (Account Settings → API Keys).
    pub api_key: SecretString,
    /// Only services and env groups of this workspace (`tea-...`/`usr-...`).
    pub owner_id: Option<String>,
    /// Only these services (by name); empty means all.
    pub services: Vec<String>,
    /// Page size for list calls, 1..=100.
    pub page_size: u32,
    /// Attempts after the first for one request (429, 5xx, transport).
    pub retries: u32,
    /// First wait after a 5xx or transport error; doubles per attempt.
    pub backoff: Duration,
    /// Longest single wait, also for a `Retry-After` that asks for more.
    pub max_wait: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl RenderOptions {
    /// Defaults for `api_key`: the public API, all services, pages of 100.
    pub fn new(api_key: SecretString) -> Self {
        RenderOptions {
            api_url: DEFAULT_API_URL.to_string(),
            api_key,
            owner_id: None,
            services: Vec::new(),
            page_size: 100,
            retries: 6,
            backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(120),
            timeout: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for RenderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderOptions")
            .field("api_url", &self.api_url)
            .field("api_key", &"<redacted>")
            .field("owner_id", &self.owner_id)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

/// Requests made, for reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    /// HTTP requests sent, retries included.
    pub sent: u64,
    /// Of which answered 429.
    pub rate_limited: u64,
    /// Requests repeated after a 429, a 5xx or a transport error.
    pub retried: u64,
}

/// A client of one Render account.
pub struct Client {
    http: Http,
    base: String,
    opts: RenderOptions,
    sent: AtomicU64,
    rate_limited: AtomicU64,
    retried: AtomicU64,
}

impl Client {
    /// A client for `opts`; checks the options, contacts nobody.
    pub fn new(opts: &RenderOptions) -> Result<Client> {
        if opts.api_key.expose_secret().trim().is_empty() {
            return Err(Error::Invalid(
                "the Render API key is empty: set [render] api_key (e.g. \"${RENDER_API_KEY}\")"
                    .into(),
            ));
        }
        if !(1..=100).contains(&opts.page_size) {
            return Err(Error::Invalid(format!(
                "[render] page_size is {}; Render accepts 1 to 100",
                opts.page_size
            )));
        }
        let base = opts.api_url.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(Error::Invalid(format!(
                "[render] api_url {base:?} is not an http(s) URL"
            )));
        }
        let http = Http::builder()
            .timeout(opts.timeout)
            .connect_timeout(Duration::from_secs(20))
            .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("setting up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            opts: opts.clone(),
            sent: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            retried: AtomicU64::new(0),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RenderOptions {
        &self.opts
    }

    /// What was sent so far.
    pub fn requests(&self) -> Requests {
        Requests {
            sent: self.sent.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }

    /// `GET path` as JSON.
    pub fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, &[], None)
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::PUT, path, &[], Some(body))
    }

    /// Every element of a paged list. Render wraps each element as
    /// `{"<field>": {...}, "cursor": "..."}`; the next page is asked for
    /// with the last element's cursor until a page comes back short.
    /// A bare element (no wrapper, as the env-group list documents) is
    /// taken as it is.
    pub fn list(&self, path: &str, field: &str, filter: &[(&str, String)]) -> Result<Vec<Value>> {
        let limit = self.opts.page_size as usize;
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query: Vec<(&str, String)> = filter.to_vec();
            query.push(("limit", limit.to_string()));
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let page = self.call(Method::GET, path, &query, None)?;
            let Value::Array(elems) = page else {
                return Err(Error::Shape {
                    path: path.into(),
                    what: "expected a JSON array".into(),
                });
            };
            let n = elems.len();
            let mut last = None;
            for e in elems {
                match e.get(field) {
                    Some(inner) if e.get("cursor").is_some() => {
                        last = e.get("cursor").and_then(Value::as_str).map(str::to_string);
                        out.push(inner.clone());
                    }
                    _ => {
                        last = None;
                        out.push(e);
                    }
                }
            }
            if n < limit {
                return Ok(out);
            }
            match last {
                Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
                Some(_) => {
                    return Err(Error::Shape {
                        path: path.into(),
                        what: "the same cursor came back twice; stopping rather than looping"
                            .into(),
                    })
                }
                None => {
                    return Err(Error::Shape {
                        path: path.into(),
                        what: format!(
                        "a full page of {n} without cursors: lifeboat cannot ask for the next page"
                    ),
                    })
                }
            }
        }
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut attempt = 0u32;
        loop {
            self.sent.fetch_add(1, Ordering::Relaxed);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .query(query)
                .bearer_auth(self.opts.api_key.expose_secret())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            let wait = match req.send() {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        return read_json(resp, path);
                    }
                    let wait = if status == StatusCode::TOO_MANY_REQUESTS {
                        self.rate_limited.fetch_add(1, Ordering::Relaxed);
                        retry_after(&resp).unwrap_or_else(|| self.backoff(attempt))
                    } else if status.is_server_error() {
                        self.backoff(attempt)
                    } else {
                        return Err(status_error(method.as_str(), path, status, resp));
                    };
                    if attempt >= self.opts.retries {
                        return Err(Error::Http {
                            method: method.to_string(),
                            path: path.into(),
                            status: status.as_u16(),
                            message: format!("still failing after {} attempts", attempt + 1),
                        });
                    }
                    wait
                }
                Err(e) => {
                    if attempt >= self.opts.retries {
                        return Err(Error::Transport {
                            url: url.clone(),
                            message: format!("{} (after {} attempts)", clean(&e), attempt + 1),
                        });
                    }
                    self.backoff(attempt)
                }
            }
            .min(self.opts.max_wait);
            self.retried.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                "render: {method} {path}: retrying in {:.1}s",
                wait.as_secs_f64()
            );
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.opts
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.opts.max_wait)
    }
}

fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn read_json(resp: Response, path: &str) -> Result<Value> {
    let bytes = resp.bytes().map_err(|e| Error::Transport {
        url: path.into(),
        message: format!("reading the answer: {}", clean(&e)),
    })?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::Shape {
        path: path.into(),
        what: format!("not JSON: {e}"),
    })
}

fn status_error(method: &str, path: &str, status: StatusCode, resp: Response) -> Error {
    let message = resp
        .json::<Value>()
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .map(|m| m.chars().take(200).collect::<String>())
        .unwrap_or_default();
    match status {
        StatusCode::UNAUTHORIZED => Error::Unauthorized { path: path.into() },
        StatusCode::FORBIDDEN => Error::Forbidden { path: path.into() },
        StatusCode::NOT_FOUND => Error::NotFound { path: path.into() },
        _ => Error::Http {
            method: method.into(),
            path: path.into(),
            status: status.as_u16(),
            message,
        },
    }
}

/// A transport error without reqwest's chain noise (it never holds the key:
/// the key travels in a header, not the URL).
fn clean(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
