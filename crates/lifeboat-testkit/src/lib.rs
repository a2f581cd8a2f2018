//! Test support in the style of cargo's `cargo-test-support`: small helpers
//! that start the real servers a test needs and run the real `lifeboat`
//! binary, so tests read as the commands an operator would type.
//!
//! - [`Lifeboat`]: a scratch directory with a repository, keys and a
//!   runner for the binary;
//! - [`S3Server`]: a real S3-compatible server process (moto), one per test
//!   or the one `scripts/test.sh` started (`LIFEBOAT_TEST_S3_ENDPOINT`);
//! - [`data`]: deterministic generators of test streams;
//! - [`bucket`]: a plain S3 client and generated objects;
//! - [`proxy`]: an HTTP proxy that counts requests and injects faults.

pub mod bucket;
pub mod clinic;
pub mod data;
pub mod forge;
pub mod git;
pub mod hook;
pub mod mariadb;
pub mod proxy;
pub mod render;
mod run;
mod s3;
pub mod smtp;
pub mod synth_s3;

pub use run::{lifeboat_bin, strs, Lifeboat, Output};
pub use s3::S3Server;

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Serve `router` on 127.0.0.1:`port` (0: any free port) from a thread of
/// its own until the returned sender fires (or is dropped); returns
/// `http://ADDRESS`. For the fake and synthetic HTTP servers.
pub(crate) fn serve_http(
    router: axum::Router,
    port: u16,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind a test server");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("server address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime for a test server");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    (url, stop)
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    let mut f =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Total size of the files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += dir_size(&p);
            } else if let Ok(m) = e.metadata() {
                total += m.len();
            }
        }
    }
    total
}

/// Every file under `dir`, relative paths, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.display().to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// What a shell makes of an env file written by `restore --to-env-dir`
/// (the default `shell` dialect): `set -a; . FILE` in bash, every variable
/// it adds to an empty environment, sorted.
pub fn shell_env(path: &Path) -> Vec<(String, String)> {
    let dump = |file: &Path| -> std::collections::BTreeMap<String, String> {
        let out = std::process::Command::new("bash")
            .args([
                "-c",
                "set -a; . \"$0\"; set +a; exec python3 -c 'import json, os; print(json.dumps(dict(os.environ)))'",
            ])
            .arg(file)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "bash could not load {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the environment as JSON")
    };
    let base = dump(Path::new("/dev/null"));
    dump(path)
        .into_iter()
        .filter(|(k, _)| !base.contains_key(k))
        .collect()
}
