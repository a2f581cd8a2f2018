//! A fake of Render's REST API (`/v1`), for tests and the demo: the
//! endpoints lifeboat uses, with the documented shapes (see `render/API.md`
//! next to this file), Bearer authentication (401 on a bad key), cursor
//! paging with `limit` 1..=100, 404s, and injectable faults (429 with
//! `Retry-After`, 500). Every request is logged with its status.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// A service in the fake.
#[derive(Debug, Clone)]
pub struct FakeService {
    /// The service object (`id`, `name`, `type`, `serviceDetails`, ...).
    pub service: Value,
    pub env_vars: Vec<(String, String)>,
    pub secret_files: Vec<(String, String)>,
    pub custom_domains: Vec<Value>,
    pub routes: Vec<Value>,
    pub headers: Vec<Value>,
}

impl FakeService {
    pub fn id(&self) -> &str {
        self.service["id"].as_str().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.service["name"].as_str().unwrap_or_default()
    }
}

/// An environment group in the fake.
#[derive(Debug, Clone)]
pub struct FakeGroup {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    /// Ids of linked services.
    pub service_ids: Vec<String>,
    pub env_vars: Vec<(String, String)>,
    pub secret_files: Vec<(String, String)>,
}

/// A fault to answer instead of the next request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// This status with an error body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    RateLimit { retry_after: u64 },
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

/// Everything the fake serves.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub services: Vec<FakeService>,
    pub env_groups: Vec<FakeGroup>,
    pub faults: VecDeque<Fault>,
    pub log: Vec<Logged>,
}

impl World {
    pub fn service_mut(&mut self, name: &str) -> &mut FakeService {
        self.services
            .iter_mut()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("no fake service {name}"))
    }

    /// Every env value and secret file content that holds a generated
    /// secret (see [`secret`]), to grep outputs and files for.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.services {
            out.extend(s.env_vars.iter().map(|(_, v)| v.clone()));
            out.extend(s.secret_files.iter().map(|(_, v)| v.clone()));
        }
        for g in &self.env_groups {
            out.extend(g.env_vars.iter().map(|(_, v)| v.clone()));
            out.extend(g.secret_files.iter().map(|(_, v)| v.clone()));
        }
        out.retain(|v| v.contains(SECRET_MARK));
        out
    }

    /// The clinic deployment: a static-site frontend and a Docker web
    /// service backend with 60 env vars between them, 2 secret files on
    /// the backend, an env group linked to it, a custom domain on each, and
    /// routes on the frontend. Values are deterministic from `seed` and
    /// include awkward ones (quotes, `$`, `#`, newlines, unicode).
    pub fn clinic(seed: u64) -> World {
        const OWNER: &str = "tea-clinic0000000000000";
        let v = |k: &str| secret(seed, k);
        let mut api_vars: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), format!("mysql://avnadmin:{}@clinic-mysql.aivencloud.com:12345/defaultdb?ssl-mode=REQUIRED", v("db"))),
            ("JWT_SECRET".into(), v("jwt")),
            ("JWT_REFRESH_SECRET".into(), v("jwt-refresh")),
            ("R2_ACCESS_KEY_ID".into(), v("r2-id")),
            ("R2_SECRET_ACCESS_KEY".into(), v("r2-secret")),
            ("SMTP_PASSWORD".into(), format!("p'a\"s$s#{}", v("smtp"))),
            ("GOOGLE_CLIENT_SECRET".into(), v("google")),
            ("PRIVATE_KEY_PEM".into(), format!("-----BEGIN PRIVATE KEY-----\n{}\n{}\n-----END PRIVATE KEY-----", v("pem1"), v("pem2"))),
            ("GREETING".into(), format!("Grüß Gott, {} 🚑", v("greet"))),
            ("NODE_ENV".into(), "production".into()),
        ];
        for i in api_vars.len()..42 {
            api_vars.push((format!("FEATURE_{i:02}"), v(&format!("feature-{i}"))));
        }
        let mut web_vars: Vec<(String, String)> = vec![
            ("VITE_API_URL".into(), "https://api.clinic.example".into()),
            (
                "VITE_SENTRY_DSN".into(),
                format!("https://{}@o1.ingest.sentry.io/2", v("sentry")),
            ),
        ];
        for i in web_vars.len()..18 {
            web_vars.push((format!("VITE_FLAG_{i:02}"), v(&format!("flag-{i}"))));
        }
        let api = FakeService {
            service: json!({
                "id": "srv-clinicapi000000000000",
                "name": "clinic-api",
                "type": "web_service",
                "ownerId": OWNER,
                "repo": "https://github.com/clinic/clinic",
                "branch": "main",
                "rootDir": "backend",
                "autoDeploy": "yes",
                "suspended": "not_suspended",
                "slug": "clinic-api",
                "createdAt": "2025-03-01T10:00:00Z",
                "updatedAt": "2026-11-01T10:00:00Z",
                "dashboardUrl": "https://dashboard.render.com/web/srv-clinicapi000000000000",
                "serviceDetails": {
                    "env": "docker",
                    "runtime": "docker",
                    "plan": "starter",
                    "region": "frankfurt",
                    "numInstances": 1,
                    "healthCheckPath": "/api/health",
                    "url": "https://clinic-api.onrender.com",
                    "buildPlan": "starter",
                    "openPorts": [{"port": 10000, "protocol": "TCP"}],
                    "envSpecificDetails": {
                        "dockerCommand": "",
                        "dockerContext": ".",
                        "dockerfilePath": "./Dockerfile"
                    }
                }
            }),
            env_vars: api_vars,
            secret_files: vec![
                (
                    "aiven-ca.pem".into(),
                    format!(
                        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                        v("ca")
                    ),
                ),
                (
                    "google-service-account.json".into(),
                    format!(
                        "{{\"type\":\"service_account\",\"private_key\":\"{}\"}}",
                        v("gsa")
                    ),
                ),
            ],
            custom_domains: vec![json!({
                "id": "cdm-api0000000000000000",
                "name": "api.clinic.example",
                "domainType": "subdomain",
                "publicSuffix": "example",
                "redirectForName": "",
                "verificationStatus": "verified",
                "createdAt": "2025-03-02T10:00:00Z"
            })],
            routes: Vec::new(),
            headers: Vec::new(),
        };
        let web = FakeService {
            service: json!({
                "id": "srv-clinicweb000000000000",
                "name": "clinic-frontend",
                "type": "static_site",
                "ownerId": OWNER,
                "repo": "https://github.com/clinic/clinic",
                "branch": "main",
                "rootDir": "frontend",
                "autoDeploy": "yes",
                "suspended": "not_suspended",
                "slug": "clinic-frontend",
                "createdAt": "2025-03-01T10:00:00Z",
                "updatedAt": "2026-11-01T10:00:00Z",
                "serviceDetails": {
                    "buildCommand": "npm ci && npm run build",
                    "publishPath": "dist",
                    "url": "https://clinic-frontend.onrender.com",
                    "buildPlan": "starter",
                    "pullRequestPreviewsEnabled": "no"
                }
            }),
            env_vars: web_vars,
            secret_files: Vec::new(),
            custom_domains: vec![json!({
                "id": "cdm-web0000000000000000",
                "name": "clinic.example",
                "domainType": "apex",
                "publicSuffix": "example",
                "redirectForName": "www.clinic.example",
                "verificationStatus": "verified",
                "createdAt": "2025-03-02T10:00:00Z"
            })],
            routes: vec![json!({
                "id": "rt-spa0000000000000000",
                "type": "rewrite",
                "source": "/*",
                "destination": "/index.html",
                "priority": 0
            })],
            headers: vec![json!({
                "id": "hdr-0000000000000000000",
                "path": "/*",
                "name": "X-Frame-Options",
                "value": "DENY"
            })],
        };
        let group = FakeGroup {
            id: "evg-clinicshared00000000".into(),
            name: "clinic-shared".into(),
            owner_id: OWNER.into(),
            service_ids: vec![api.id().to_string()],
            env_vars: vec![
                ("SMTP_HOST".into(), "mail.smtp2go.com".into()),
                ("SMTP_USER".into(), "clinic".into()),
                ("SENTRY_AUTH_TOKEN".into(), v("sentry-token")),
            ],
            secret_files: Vec::new(),
        };
        World {
            services: vec![api, web],
            env_groups: vec![group],
            ..Default::default()
        }
    }
}

/// What every generated secret contains.
pub const SECRET_MARK: &str = "s3cr3t-";

/// A deterministic secret-looking value.
pub fn secret(seed: u64, what: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{seed}/{what}").as_bytes());
    format!("{SECRET_MARK}{}", hex::encode(&h[..12]))
}

/// A running fake; it stops when dropped.
pub struct FakeRender {
    /// Base URL including `/v1`: give this to lifeboat as `api_url`.
    pub url: String,
    /// The only API key it accepts.
    pub key: String,
    world: Arc<Mutex<World>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Clone)]
struct App {
    world: Arc<Mutex<World>>,
    key: Arc<String>,
}

impl FakeRender {
    /// Serve `world` on a free port, accepting `key`.
    pub fn start(world: World, key: &str) -> FakeRender {
        Self::start_on(world, key, 0)
    }

    /// Serve on `port` (0: any free one).
    pub fn start_on(world: World, key: &str, port: u16) -> FakeRender {
        let world = Arc::new(Mutex::new(world));
        let app = App {
            world: world.clone(),
            key: Arc::new(key.to_string()),
        };
        let (base, stop) = crate::serve_http(Router::new().fallback(handle).with_state(app), port);
        let url = format!("{base}/v1");
        FakeRender {
            url,
            key: key.to_string(),
            world,
            stop: Some(stop),
        }
    }

    /// Look at or change what is served.
    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.world.lock().expect("fake world"))
    }

    /// Answer the next requests with these faults, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.with(|w| w.faults.extend(faults));
    }

    /// Requests so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.with(|w| w.log.clone())
    }

    /// Block until stopped (for the standalone binary).
    pub fn wait(self) {
        loop {
            std::thread::park();
        }
    }
}

impl Drop for FakeRender {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let id = status
        .canonical_reason()
        .unwrap_or("error")
        .to_lowercase()
        .replace(' ', "_");
    (status, axum::Json(json!({"id": id, "message": message}))).into_response()
}

/// `[{"<field>": x, "cursor": c}]` paged by `limit` and `cursor`.
fn page(items: Vec<(String, Value)>, field: &str, q: &HashMap<String, String>) -> Response {
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => return error(StatusCode::BAD_REQUEST, "limit must be between 1 and 100"),
    };
    let start = match q.get("cursor") {
        None => 0,
        Some(c) => match items.iter().position(|(k, _)| &cursor(k) == c) {
            Some(i) => i + 1,
            None => return error(StatusCode::BAD_REQUEST, "invalid cursor"),
        },
    };
    let out: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|(k, v)| json!({ field: v, "cursor": cursor(&k) }))
        .collect();
    axum::Json(Value::Array(out)).into_response()
}

/// Opaque to clients; here the hex of the element's key.
fn cursor(key: &str) -> String {
    hex::encode(key.as_bytes())
}

fn kv(list: &[(String, String)], k: &str, v: &str) -> Vec<(String, Value)> {
    list.iter()
        .map(|(a, b)| (a.clone(), json!({ k: a, v: b })))
        .collect()
}

fn parse_pairs(body: &[u8], k: &str, v: &str) -> Option<Vec<(String, String)>> {
    let list: Vec<Value> = serde_json::from_slice(body).ok()?;
    list.iter()
        .map(|e| {
            Some((
                e.get(k)?.as_str()?.to_string(),
                e.get(v)?.as_str()?.to_string(),
            ))
        })
        .collect()
}

async fn handle(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q: HashMap<String, String> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let mut w = app.world.lock().expect("fake world");
    let resp = route(&mut w, &app.key, &method, uri.path(), &headers, &q, &body);
    w.log.push(Logged {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        status: resp.status().as_u16(),
    });
    resp
}

fn route(
    w: &mut World,
    key: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {key}") {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    if let Some(f) = w.faults.pop_front() {
        return match f {
            Fault::Status(s) => error(
                StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "injected fault",
            ),
            Fault::RateLimit { retry_after } => {
                let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
                r.headers_mut().insert(
                    "retry-after",
                    retry_after.to_string().parse().expect("header"),
                );
                r
            }
        };
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let owner_ok = |owner: &str| q.get("ownerId").is_none_or(|o| o == owner);
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["services"]) => {
            let items = w
                .services
                .iter()
                .filter(|s| owner_ok(s.service["ownerId"].as_str().unwrap_or_default()))
                .filter(|s| q.get("name").is_none_or(|n| n == s.name()))
                .map(|s| (s.id().to_string(), s.service.clone()))
                .collect();
            page(items, "service", q)
        }
        ("GET", ["services", id]) => match w.services.iter().find(|s| s.id() == *id) {
            Some(s) => axum::Json(s.service.clone()).into_response(),
            None => error(StatusCode::NOT_FOUND, "service not found"),
        },
        (m, ["services", id, what]) => {
            let Some(s) = w.services.iter_mut().find(|s| s.id() == *id) else {
                return error(StatusCode::NOT_FOUND, "service not found");
            };
            match (m, *what) {
                ("GET", "env-vars") => page(kv(&s.env_vars, "key", "value"), "envVar", q),
                ("GET", "secret-files") => {
                    page(kv(&s.secret_files, "name", "content"), "secretFile", q)
                }
                ("PUT", "env-vars") => match parse_pairs(body, "key", "value") {
                    Some(list) => {
                        s.env_vars = list;
                        page(kv(&s.env_vars, "key", "value"), "envVar", &HashMap::new())
                    }
                    None => error(StatusCode::BAD_REQUEST, "invalid env var list"),
                },
                ("PUT", "secret-files") => match parse_pairs(body, "name", "content") {
                    Some(list) => {
                        s.secret_files = list;
                        page(
                            kv(&s.secret_files, "name", "content"),
                            "secretFile",
                            &HashMap::new(),
                        )
                    }
                    None => error(StatusCode::BAD_REQUEST, "invalid secret file list"),
                },
                ("GET", "custom-domains") => {
                    let items = s
                        .custom_domains
                        .iter()
                        .map(|d| (d["id"].as_str().unwrap_or_default().to_string(), d.clone()))
                        .collect();
                    page(items, "customDomain", q)
                }
                ("GET", "routes") | ("GET", "headers") => {
                    let (list, field) = if *what == "routes" {
                        (&s.routes, "route")
                    } else {
                        (&s.headers, "header")
                    };
                    let items = list
                        .iter()
                        .map(|d| (d["id"].as_str().unwrap_or_default().to_string(), d.clone()))
                        .collect();
                    page(items, field, q)
                }
                _ => error(StatusCode::NOT_FOUND, "not found"),
            }
        }
        // The documented list answer is a bare array of envGroupMeta.
        ("GET", ["env-groups"]) => {
            let limit = q
                .get("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(20);
            let out: Vec<Value> = w
                .env_groups
                .iter()
                .filter(|g| owner_ok(&g.owner_id))
                .take(limit)
                .map(|g| group_meta(g, &w.services))
                .collect();
            axum::Json(Value::Array(out)).into_response()
        }
        ("GET", ["env-groups", id]) => match w.env_groups.iter().find(|g| g.id == *id) {
            Some(g) => {
                let mut v = group_meta(g, &w.services);
                v["envVars"] = Value::Array(
                    g.env_vars
                        .iter()
                        .map(|(k, v)| json!({"key": k, "value": v}))
                        .collect(),
                );
                v["secretFiles"] = Value::Array(
                    g.secret_files
                        .iter()
                        .map(|(k, v)| json!({"name": k, "content": v}))
                        .collect(),
                );
                axum::Json(v).into_response()
            }
            None => error(StatusCode::NOT_FOUND, "environment group not found"),
        },
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

fn group_meta(g: &FakeGroup, services: &[FakeService]) -> Value {
    let links: Vec<Value> = g
        .service_ids
        .iter()
        .map(|id| {
            let s = services.iter().find(|s| s.id() == id);
            json!({
                "id": id,
                "name": s.map(|s| s.name()).unwrap_or_default(),
                "type": s.and_then(|s| s.service["type"].as_str()).unwrap_or_default(),
            })
        })
        .collect();
    json!({
        "id": g.id,
        "name": g.name,
        "ownerId": g.owner_id,
        "createdAt": "2025-03-01T10:00:00Z",
        "updatedAt": "2026-11-01T10:00:00Z",
        "serviceLinks": links,
    })
}
