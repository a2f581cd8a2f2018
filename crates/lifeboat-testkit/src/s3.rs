//! A real S3-compatible server for tests: moto (`moto_server`), installed by
//! `scripts/test.sh`. Any access key works; buckets are created here with a
//! plain HTTP PUT (moto does not check signatures).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running S3 server, stopped on drop if this process started it.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Option<Child>,
}

impl S3Server {
    /// The server `scripts/test.sh` started (`LIFEBOAT_TEST_S3_ENDPOINT`),
    /// or a new `moto_server` on a free port.
    pub fn start() -> S3Server {
        if let Ok(ep) = std::env::var("LIFEBOAT_TEST_S3_ENDPOINT") {
            if !ep.is_empty() {
                return S3Server {
                    endpoint: ep,
                    child: None,
                };
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is not installed: run scripts/dev-services.sh (pip install 'moto[server]==5.2.5')");
        let server = S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Create a bucket (a unique name per test keeps tests independent).
    pub fn create_bucket(&self, name: &str) {
        let (status, body) = self.request("PUT", &format!("/{name}"));
        assert!(
            status == 200,
            "creating bucket {name}: HTTP {status}: {body}"
        );
    }

    /// Environment for a `lifeboat` talking to this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LIFEBOAT_S3_ENDPOINT".into(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing-secret".into()),
            ("AWS_REGION".into(), "auto".into()),
        ]
    }

    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("connect to the S3 server");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, resp)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
