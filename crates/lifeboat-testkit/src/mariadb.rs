//! The MariaDB server this machine runs (127.0.0.1:3306, root, no password;
//! `LIFEBOAT_TEST_MYSQL` = `HOST:PORT` overrides), used through the stock
//! `mariadb` client so tests compare with what an operator would see.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A scratch database, dropped on drop.
pub struct TestDb {
    /// Its name.
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn host_port() -> (String, String) {
    let hp = std::env::var("LIFEBOAT_TEST_MYSQL").unwrap_or_else(|_| "127.0.0.1:3306".into());
    let (h, p) = hp.split_once(':').unwrap_or((&hp, "3306"));
    (h.to_string(), p.to_string())
}

/// `mysql://root@HOST:PORT/DB`.
pub fn url(db: &str) -> String {
    let (h, p) = host_port();
    format!("mysql://root@{h}:{p}/{db}")
}

/// The `mariadb` client as root, on `db` (or none).
pub fn client(db: Option<&str>) -> Command {
    let (h, p) = host_port();
    let mut c = Command::new("mariadb");
    c.args([
        "-h",
        &h,
        "-P",
        &p,
        "-u",
        "root",
        "--default-character-set=utf8mb4",
        "--batch",
        "--skip-column-names",
    ]);
    if let Some(db) = db {
        c.arg(db);
    }
    c
}

/// Run SQL (as root) and return stdout; panics with the error otherwise.
#[track_caller]
pub fn sql(db: Option<&str>, sql: &str) -> String {
    let out = client(db)
        .arg("-e")
        .arg(sql)
        .output()
        .expect("run the mariadb client");
    assert!(
        out.status.success(),
        "SQL failed: {sql}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pipe a script into the client; returns (success, stderr).
pub fn run_script(db: &str, script: &[u8]) -> (bool, String) {
    let mut child = client(Some(db))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the mariadb client");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(script);
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl TestDb {
    /// A new empty database with a unique name starting with `prefix`.
    pub fn new(prefix: &str) -> TestDb {
        let name = format!(
            "lbt_{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sql(
            None,
            &format!(
                "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
            ),
        );
        TestDb { name }
    }

    /// A name for a database that does not exist yet (dropped on drop too).
    pub fn unborn(prefix: &str) -> TestDb {
        let name = format!(
            "lbt_{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sql(None, &format!("DROP DATABASE IF EXISTS `{name}`"));
        TestDb { name }
    }

    /// Fill with the generated clinic database.
    pub fn load_clinic(&self, scale_mb: u64, seed: u64) {
        let mut script = Vec::new();
        crate::clinic::write_clinic_sql(&mut script, scale_mb, seed).expect("generate");
        let (ok, err) = run_script(&self.name, &script);
        assert!(ok, "loading the clinic database: {err}");
    }

    /// SQL on this database.
    #[track_caller]
    pub fn sql(&self, q: &str) -> String {
        sql(Some(&self.name), q)
    }

    /// Its URL for lifeboat.
    pub fn url(&self) -> String {
        url(&self.name)
    }

    /// Base tables, sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut t: Vec<String> = sql(
            None,
            &format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_TYPE = 'BASE TABLE'",
                self.name
            ),
        )
        .lines()
        .map(str::to_string)
        .collect();
        t.sort();
        t
    }

    /// `(table, rows, CHECKSUM TABLE)` of every base table: comparable
    /// between two databases of the same server.
    pub fn fingerprint(&self) -> Vec<(String, u64, String)> {
        self.tables()
            .into_iter()
            .map(|t| {
                let rows = self
                    .sql(&format!("SELECT COUNT(*) FROM `{t}`"))
                    .trim()
                    .parse()
                    .unwrap_or(0);
                let sum = self.sql(&format!("CHECKSUM TABLE `{t}`"));
                let sum = sum.split_whitespace().nth(1).unwrap_or("").to_string();
                (t, rows, sum)
            })
            .collect()
    }

    /// Counts of views, triggers, routines and events.
    pub fn objects(&self) -> (u64, u64, u64, u64) {
        let n = |q: &str| {
            sql(None, &q.replace("DB", &self.name))
                .trim()
                .parse()
                .unwrap_or(0)
        };
        (
            n("SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'DB'"),
            n("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'DB'"),
            n("SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'DB'"),
            n("SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'DB'"),
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = client(None)
            .arg("-e")
            .arg(format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .output();
    }
}

/// A second, private MariaDB server that requires TLS, with its own CA:
/// certificates from `openssl`, a data directory from `mariadb-install-db`,
/// `mariadbd --require-secure-transport`. Stopped and removed on drop.
pub struct TlsServer {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The CA certificate that signed the server's (PEM).
    pub ca: std::path::PathBuf,
    /// Another CA, which did not.
    pub other_ca: std::path::PathBuf,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl TlsServer {
    /// Start it (a few seconds).
    pub fn start() -> TlsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let sh = |script: &str| {
            let out = Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(d)
                .output()
                .expect("sh");
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=lifeboat test CA' \
            && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj '/CN=other CA' \
            && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost' \
            && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf \
            && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf");
        sh("mariadb-install-db --no-defaults --user=$(id -un) --datadir=$PWD/data --auth-root-authentication-method=normal");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let p = |f: &str| d.join(f).display().to_string();
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!(
                "--user={}",
                std::env::var("USER").unwrap_or_else(|_| "root".into())
            ))
            .arg(format!("--datadir={}", p("data")))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", p("s.sock")))
            .arg(format!("--ssl-ca={}", p("ca.pem")))
            .arg(format!("--ssl-cert={}", p("server.pem")))
            .arg(format!("--ssl-key={}", p("server.key")))
            .arg("--require-secure-transport=ON")
            .arg("--skip-log-bin")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let server = TlsServer {
            port,
            ca: d.join("ca.pem"),
            other_ca: d.join("other.pem"),
            dir,
            child,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while server.sql("SELECT 1").is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the TLS MariaDB did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        server
    }

    /// Run SQL over TLS as root.
    pub fn sql(&self, q: &str) -> Result<String, String> {
        self.sql_as("root", None, None, q)
    }

    /// Run SQL over TLS as `user` (with `password`), in `database`.
    pub fn sql_as(
        &self,
        user: &str,
        password: Option<&str>,
        database: Option<&str>,
        q: &str,
    ) -> Result<String, String> {
        let mut c = Command::new("mariadb");
        c.args(["-h", "127.0.0.1", "-P", &self.port.to_string(), "-u", user]);
        if let Some(p) = password {
            c.arg(format!("-p{p}"));
        }
        c.arg("--ssl")
            .arg(format!("--ssl-ca={}", self.ca.display()))
            .args(["--batch", "--skip-column-names"]);
        if let Some(db) = database {
            c.arg(db);
        }
        let out = c.args(["-e", q]).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Feed a SQL file to the stock client as root, as an operator would
    /// (`mariadb [DB] < FILE`): it stops at the first error.
    pub fn load(&self, database: Option<&str>, file: &std::path::Path) -> Result<String, String> {
        let input = std::fs::File::open(file).map_err(|e| e.to_string())?;
        let mut c = Command::new("mariadb");
        c.args([
            "-h",
            "127.0.0.1",
            "-P",
            &self.port.to_string(),
            "-u",
            "root",
        ])
        .arg("--ssl")
        .arg(format!("--ssl-ca={}", self.ca.display()))
        .args(["--batch", "--skip-column-names"]);
        if let Some(db) = database {
            c.arg(db);
        }
        let out = c.stdin(input).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Scratch space next to the server.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
