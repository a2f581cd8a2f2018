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
    pipe(client(Some(db)), script)
}

/// Pipe `script` into a client command; returns (success, stderr).
fn pipe(mut cmd: Command, script: &[u8]) -> (bool, String) {
    let mut child = cmd
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
        fingerprint(&|q| sql(None, q), &self.name)
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
        install_datadir(d);
        let port = free_port();
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
            .arg(format!("--tmpdir={}", p("tmp")))
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

/// A fresh data directory in `dir/data`.
fn install_datadir(dir: &std::path::Path) {
    let out = Command::new("sh")
        .arg("-c")
        .arg("mkdir -p tmp && mariadb-install-db --no-defaults --user=$(id -un) --datadir=$PWD/data --tmpdir=$PWD/tmp --auth-root-authentication-method=normal")
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "mariadb-install-db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A private MariaDB server that writes a binary log as point-in-time
/// capture needs it (`--log-bin --binlog-format=ROW`, FULL row images),
/// plain TCP, root without a password. Stopped and removed on drop; it
/// can be stopped and started again on the same data.
pub struct BinlogServer {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
    extra: Vec<String>,
}

impl BinlogServer {
    /// Start it (a few seconds).
    pub fn start() -> BinlogServer {
        BinlogServer::start_with(&[])
    }

    /// Start it with more `mariadbd` options (e.g. `--binlog-format=MIXED`).
    pub fn start_with(extra: &[&str]) -> BinlogServer {
        let dir = tempfile::tempdir().expect("tempdir");
        install_datadir(dir.path());
        let mut server = BinlogServer {
            port: free_port(),
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.resume();
        server
    }

    /// Start the server again after [`stop`](Self::stop).
    pub fn resume(&mut self) {
        let d = self.dir.path();
        let p = |f: &str| d.join(f).display().to_string();
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!(
                "--user={}",
                std::env::var("USER").unwrap_or_else(|_| "root".into())
            ))
            .arg(format!("--datadir={}", p("data")))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", p("s.sock")))
            .arg(format!("--tmpdir={}", p("tmp")))
            .arg(format!("--log-bin={}", p("data/bin")))
            .arg("--binlog-format=ROW")
            .arg("--server-id=1")
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.sql("SELECT 1").is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the binlog MariaDB did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Stop the server (SIGTERM: a clean shutdown) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// `mysql://root@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    /// The stock client as root, in `database`.
    pub fn client(&self, database: Option<&str>) -> Command {
        let mut c = Command::new("mariadb");
        c.args([
            "-h",
            "127.0.0.1",
            "-P",
            &self.port.to_string(),
            "-u",
            "root",
        ])
        .args([
            "--default-character-set=utf8mb4",
            "--batch",
            "--skip-column-names",
        ]);
        if let Some(db) = database {
            c.arg(db);
        }
        c
    }

    /// Run SQL as root.
    pub fn sql(&self, q: &str) -> Result<String, String> {
        let out = self
            .client(None)
            .args(["-e", q])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The server's own binlog files, oldest first.
    pub fn binlog_files(&self) -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(self.dir.path().join("data"))
            .expect("data dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("bin.") && n[4..].bytes().all(|b| b.is_ascii_digit())
                })
            })
            .collect();
        v.sort();
        v
    }

    /// Scratch space next to the server.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Pipe a script into the client in `database`; panics on failure.
    pub fn load(&self, database: &str, script: &[u8]) {
        let (ok, err) = pipe(self.client(Some(database)), script);
        assert!(ok, "loading into {database}: {err}");
    }

    /// `(table, rows, CHECKSUM TABLE)` of every base table of `database`,
    /// sorted: comparable between two databases of this server.
    pub fn fingerprint(&self, database: &str) -> Vec<(String, u64, String)> {
        fingerprint(
            &|q| self.sql(q).unwrap_or_else(|e| panic!("{q}: {e}")),
            database,
        )
    }
}

/// `(table, rows, CHECKSUM TABLE)` of every base table of `database`,
/// sorted, through `sql` (which returns a query's output).
fn fingerprint(sql: &dyn Fn(&str) -> String, database: &str) -> Vec<(String, u64, String)> {
    let mut tables: Vec<String> = sql(&format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{database}' AND TABLE_TYPE = 'BASE TABLE'"
    ))
    .lines()
    .map(str::to_string)
    .collect();
    tables.sort();
    tables
        .into_iter()
        .map(|t| {
            let rows = sql(&format!("SELECT COUNT(*) FROM `{database}`.`{t}`"))
                .trim()
                .parse()
                .unwrap_or(0);
            let sum = sql(&format!("CHECKSUM TABLE `{database}`.`{t}`"));
            let sum = sum.split_whitespace().nth(1).unwrap_or("").to_string();
            (t, rows, sum)
        })
        .collect()
}

impl Drop for BinlogServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
