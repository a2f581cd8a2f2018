//! Running the real `lifeboat` binary against a scratch repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::S3Server;

/// The `lifeboat` binary of this build: `target/<profile>/lifeboat`, next
/// to the test executable's `deps/` folder (built by `scripts/test.sh`), or
/// `LIFEBOAT_BIN`.
pub fn lifeboat_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LIFEBOAT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("lifeboat");
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p lifeboat-cli` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident memory in KiB, when measured.
    pub peak_rss_kib: Option<u64>,
}

impl Output {
    /// Panic with the output unless the run succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "lifeboat failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panic unless the run exited with `code`.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// A scratch repository with its two keys, and a runner for the binary.
pub struct Lifeboat {
    /// Scratch directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The repository URL.
    pub repo: String,
    pub restore_key: PathBuf,
    pub backup_key: PathBuf,
    env: Vec<(String, String)>,
}

impl Lifeboat {
    /// A repository in a local directory (not yet initialised).
    pub fn local() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo").display().to_string();
        Self::with(dir, repo, Vec::new())
    }

    /// A repository in a fresh bucket of `server`.
    pub fn s3(server: &S3Server, bucket: &str) -> Self {
        server.create_bucket(bucket);
        Self::s3_in(server, bucket)
    }

    /// A repository in `bucket`, which the test made (e.g. with object lock).
    pub fn s3_in(server: &S3Server, bucket: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::with(dir, format!("s3://{bucket}/lifeboat"), server.env())
    }

    fn with(dir: tempfile::TempDir, repo: String, env: Vec<(String, String)>) -> Self {
        let restore_key = dir.path().join("restore.key");
        let backup_key = dir.path().join("backup.key");
        Self {
            dir,
            repo,
            restore_key,
            backup_key,
            env,
        }
    }

    /// Set an environment variable for every later run.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// The repository's URL (a directory or s3://BUCKET/PREFIX).
    pub fn repo_url(&self) -> String {
        self.repo.clone()
    }

    /// The repository directory (local repositories only).
    pub fn repo_path(&self) -> &Path {
        Path::new(&self.repo)
    }

    /// The backup host's cache directory (`LIFEBOAT_CACHE_DIR` of every run).
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// A path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `lifeboat init`, checked.
    pub fn init(&self) -> Output {
        self.run(&[
            "init",
            "--restore-key-file",
            &self.restore_key.display().to_string(),
            "--backup-key-file",
            &self.backup_key.display().to_string(),
        ])
        .ok()
    }

    /// `--backup-key-file B`.
    pub fn backup_key_arg(&self) -> [String; 2] {
        [
            "--backup-key-file".into(),
            self.backup_key.display().to_string(),
        ]
    }

    /// `--restore-key-file K`.
    pub fn restore_key_arg(&self) -> [String; 2] {
        [
            "--restore-key-file".into(),
            self.restore_key.display().to_string(),
        ]
    }

    /// `backup --json --stdin-from-command CMD --item ITEM` with the backup key.
    pub fn backup_command(&self, cmd: &str, item: &str, extra: &[&str]) -> Output {
        let b = self.backup_key.display().to_string();
        let mut args = vec![
            "backup",
            "--json",
            "--backup-key-file",
            &b,
            "--stdin-from-command",
            cmd,
            "--item",
            item,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `restore SNAP --item ITEM --to TO` with the restore key.
    pub fn restore_item(&self, snapshot: &str, item: &str, to: &Path) -> Output {
        let k = self.restore_key.display().to_string();
        let to = to.display().to_string();
        self.run(&[
            "restore",
            "--restore-key-file",
            &k,
            snapshot,
            "--item",
            item,
            "--to",
            &to,
        ])
    }

    /// `verify --read-data --json` with the restore key.
    pub fn verify_read_data(&self) -> Output {
        let k = self.restore_key.display().to_string();
        self.run(&["verify", "--json", "--read-data", "--restore-key-file", &k])
    }

    /// `snapshots --json` with the backup key, parsed.
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        let b = self.backup_key.display().to_string();
        let out = self
            .run(&["snapshots", "--json", "--backup-key-file", &b])
            .ok();
        out.json().as_array().cloned().unwrap_or_default()
    }

    /// The binary with `--repo` and the environment set; keys are not.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_at(&self.repo, args)
    }

    /// [`command`](Self::command) on another repository (a replica) with
    /// this one's scratch directory and environment.
    pub fn command_at(&self, repo: &str, args: &[&str]) -> Command {
        let mut c = Command::new(lifeboat_bin());
        c.arg("--repo")
            .arg(repo)
            .args(args)
            .current_dir(self.dir.path());
        for var in [
            "LIFEBOAT_REPO",
            "LIFEBOAT_BACKUP_KEY_FILE",
            "LIFEBOAT_RESTORE_KEY_FILE",
        ] {
            c.env_remove(var);
        }
        // The backup host's cache stays in the scratch directory.
        c.env("LIFEBOAT_CACHE_DIR", self.cache_dir());
        // And its run journal.
        c.env("LIFEBOAT_STATE_DIR", self.dir.path().join("state"));
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Run and capture.
    pub fn run(&self, args: &[&str]) -> Output {
        Output::of(&mut self.command(args))
    }

    /// Run on another repository (a replica) and capture.
    pub fn run_at(&self, repo: &str, args: &[&str]) -> Output {
        Output::of(&mut self.command_at(repo, args))
    }
}

impl Output {
    /// Run `command` and capture.
    pub fn of(command: &mut Command) -> Output {
        let out = command.output().expect("run lifeboat");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            peak_rss_kib: None,
        }
    }
}

impl Lifeboat {
    /// Run under `/usr/bin/time` to learn the peak resident memory.
    pub fn run_measured(&self, args: &[&str]) -> Output {
        let rss_file = self.path("rss.txt");
        let c = self.command(args);
        let inner = c.get_program().to_owned();
        let argv: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
        let mut t = Command::new("/usr/bin/time");
        t.arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .arg(inner)
            .args(argv);
        t.current_dir(self.dir.path());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => t.env(k, v),
                None => t.env_remove(k),
            };
        }
        let out = t
            .output()
            .expect("run /usr/bin/time (Debian package `time`)");
        let rss = std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()));
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            peak_rss_kib: rss,
        }
    }
}

/// `args` as `&str`s (helper for building argument lists).
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
