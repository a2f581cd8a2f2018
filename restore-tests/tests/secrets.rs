//! Secret hygiene over every command: a system whose database password,
//! bucket secret, Render API key, Render env values and secret files, key
//! passphrase and keys are all known, backed up, inspected, verified,
//! restored, drilled, diffed, exported, forgotten and pruned with the most
//! verbose logging. No secret may appear in any stdout or stderr, nor in
//! any file lifeboat wrote (the store, its cache, reports, temp files),
//! except the files whose job is to hold them (keys, restored .env and
//! secret files), and those are mode 0600. Errors from bad credentials do
//! not echo them. The backup key cannot read anything.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use lifeboat_testkit::bucket::upload_documents;
use lifeboat_testkit::git::git;
use lifeboat_testkit::mariadb::{self, TestDb};
use lifeboat_testkit::render::{FakeRender, World};
use lifeboat_testkit::{files_under, Lifeboat, S3Server};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .elapsed()
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Secret lines of a key file (age identities, the dedup secret).
fn key_secrets(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("key file")
        .lines()
        .filter(|l| l.starts_with("AGE-SECRET-KEY-") || l.starts_with("dedup-secret:"))
        .map(|l| l.trim_start_matches("dedup-secret:").trim().to_string())
        .collect()
}

struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        if value.len() >= 8 {
            self.0.push((what.to_string(), value.to_string()));
        }
    }

    /// The secrets found in `text`.
    fn found_in(&self, text: &[u8]) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, v)| text.windows(v.len()).any(|w| w == v.as_bytes()))
            .map(|(w, _)| w.as_str())
            .collect()
    }
}

#[test]
fn no_command_leaks_a_secret_and_secret_files_are_private() {
    let mut secrets = Secrets(Vec::new());
    let mut lb = Lifeboat::local();
    lb.init();
    let tmp = lb.path("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    lb.set_env("TMPDIR", tmp.to_str().expect("utf-8"));

    // MySQL, through a user with a password.
    let db = TestDb::new("secrets");
    db.load_clinic(1, 5);
    let user = format!("lbt_sec_{}", std::process::id());
    let password = unique("Db-pass");
    mariadb::sql(
        None,
        &format!(
            "DROP USER IF EXISTS '{user}'@'%'; CREATE USER '{user}'@'%' IDENTIFIED BY '{password}';
             GRANT ALL ON *.* TO '{user}'@'%';"
        ),
    );
    secrets.add("the MySQL password", &password);
    lb.set_env("TEST_MYSQL_PASSWORD", &password);

    // Objects in a bucket, with a secret access key.
    let s3 = S3Server::start();
    s3.create_bucket("sec-uploads");
    s3.create_bucket("sec-drill");
    upload_documents(&db.name, &s3.endpoint, "sec-uploads", 20_000).expect("documents");
    let s3_secret = unique("R2-secret");
    secrets.add("the bucket secret", &s3_secret);
    lb.set_env("TEST_S3_SECRET", &s3_secret);

    // Render, with its API key and every env value and secret file.
    let api_key = unique("rnd_SecretKey");
    secrets.add("the Render API key", &api_key);
    lb.set_env("TEST_RENDER_KEY", &api_key);
    let fake = FakeRender::start(World::clinic(7), &api_key);
    fake.with(|w| {
        for s in &w.services {
            for (k, v) in s.env_vars.iter().chain(&s.secret_files) {
                secrets.add(&format!("Render value {}/{k}", s.name()), v);
            }
        }
        for g in &w.env_groups {
            for (k, v) in g.env_vars.iter().chain(&g.secret_files) {
                secrets.add(&format!("Render group value {}/{k}", g.name), v);
            }
        }
    });

    // Git.
    let code = lb.path("code");
    std::fs::create_dir_all(&code).expect("mkdir");
    git(&code, &["init", "--quiet", "-b", "main"]);
    std::fs::write(code.join("README"), "clinic\n").expect("write");
    git(&code, &["add", "README"]);
    git(&code, &["commit", "--quiet", "-m", "one"]);

    for k in [&lb.restore_key, &lb.backup_key] {
        for s in key_secrets(k) {
            secrets.add("a key", &s);
        }
    }
    let passphrase = unique("Key-passphrase");
    secrets.add("the new key's passphrase", &passphrase);
    lb.set_env("LIFEBOAT_NEW_KEY_PASSPHRASE", &passphrase);

    let drill_db = TestDb::unborn("secrets_drill");
    let scratch = lb.path("staging");
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mysql]\nurl = \"mysql://{user}@127.0.0.1:3306/{db}\"\npassword = \"${{TEST_MYSQL_PASSWORD}}\"\n\n\
             [objects]\nendpoint = \"{ep}\"\nregion = \"auto\"\nbucket = \"sec-uploads\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"${{TEST_S3_SECRET}}\"\n\n\
             [render]\napi_key = \"${{TEST_RENDER_KEY}}\"\napi_url = \"{render}\"\n\n\
             [[git]]\nurl = \"{code}\"\nname = \"code\"\n\n\
             [staging]\nmysql_url = \"mysql://{user}@127.0.0.1:3306/{drill}\"\n\
             mysql_password = \"${{TEST_MYSQL_PASSWORD}}\"\nobjects_bucket = \"sec-drill\"\ndir = \"{scratch}\"\n\n\
             [[schedule]]\njob = \"backup\"\ncron = \"0 2 * * *\"\nargs = [\"--tag\", \"nightly\"]\n",
            db = db.name,
            ep = s3.endpoint,
            render = fake.url,
            code = code.display(),
            drill = drill_db.name,
            scratch = scratch.display(),
        ),
    )
    .expect("config");
    let cfg = cfg.display().to_string();
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let p = |name: &str| lb.path(name).display().to_string();
    let (env_dir, new_key) = (p("env"), p("second.key"));
    let copy_db = TestDb::unborn("secrets_copy");

    let with = |args: &[&str]| {
        let mut v = vec!["--config", &cfg, "-vv", "--backup-key-file", &bk];
        v.extend_from_slice(args);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let full = |args: &[&str]| {
        let mut v = with(&["--restore-key-file", &rk]);
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    let copy_url = format!("mysql://{user}@127.0.0.1:3306/{}", copy_db.name);
    let check = |args: &[String], want: i32| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lb.run(&args);
        assert_eq!(
            out.code, want,
            "{args:?} exited {}:\n{}\n{}",
            out.code, out.stdout, out.stderr
        );
        let leaked = secrets.found_in(format!("{}{}", out.stdout, out.stderr).as_bytes());
        assert!(leaked.is_empty(), "{args:?} printed {leaked:?}");
    };
    check(&with(&["backup"]), 0);
    check(&with(&["backup", "--source", "render"]), 0);
    let ids: Vec<String> = lb
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    let (all, second) = (ids[0].as_str(), ids[1].as_str());
    let runs: Vec<(Vec<String>, i32)> = vec![
        (with(&["snapshots"]), 0),
        (with(&["--json", "snapshots"]), 0),
        (full(&["show", "latest"]), 0),
        (full(&["verify", "--read-data"]), 0),
        (with(&["diff", all, second, "--source", "render"]), 0),
        (
            full(&["restore", all, "--source", "mysql", "--target", &copy_url]),
            0,
        ),
        (
            full(&["restore", all, "--source", "objects", "--to", &p("files")]),
            0,
        ),
        (
            full(&[
                "restore",
                "latest",
                "--source",
                "render",
                "--to-env-dir",
                &env_dir,
            ]),
            0,
        ),
        (
            full(&["restore", all, "--source", "git", "--to", &p("clone")]),
            0,
        ),
        (
            full(&["export", all, "--source", "mysql", "--to", &p("dump.sql")]),
            0,
        ),
        (full(&["check-references", all]), 0),
        (full(&["drill", all, "--report", &p("drill.json")]), 0),
        (
            full(&["snapshot-before-migration", "--note", "add a column"]),
            0,
        ),
        (full(&["key", "list"]), 0),
        (
            full(&["key", "add", "--new-key-file", &new_key, "--passphrase"]),
            0,
        ),
        (full(&["forget", "--keep-last", "2"]), 0),
        (full(&["prune"]), 0),
        (with(&["unlock"]), 0),
        (with(&["daemon", "--check"]), 0),
        // The backup key reads nothing.
        (with(&["verify", "--read-data"]), 5),
        (
            with(&[
                "restore", "latest", "--source", "mysql", "--target", &copy_url, "--force",
            ]),
            5,
        ),
    ];
    for (args, want) in &runs {
        check(args, *want);
    }

    // Bad credentials: the errors do not echo them.
    let wrong = unique("Wrong-pass");
    let mut bad = Secrets(Vec::new());
    bad.add("the wrong password", &wrong);
    bad.add("the wrong API key", &format!("rnd_{wrong}"));
    let refused = |source: &str, var: &str, value: &str| {
        let args = with(&["backup", "--source", source]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lb.command(&args).env(var, value).output().expect("run");
        assert_eq!(out.status.code(), Some(3), "{source} with a bad {var}");
        let text = [out.stdout, out.stderr].concat();
        let found = bad.found_in(&text);
        assert!(
            found.is_empty(),
            "{found:?} in {}",
            String::from_utf8_lossy(&text)
        );
    };
    refused("mysql", "TEST_MYSQL_PASSWORD", &wrong);
    refused("render", "TEST_RENDER_KEY", &format!("rnd_{wrong}"));

    // Every file under the scratch directory: the store, the cache, temp
    // files, reports, restores. Files holding secrets must be meant to.
    let root = lb.path("");
    let meant: Vec<PathBuf> = vec![
        lb.restore_key.clone(),
        lb.backup_key.clone(),
        PathBuf::from(&new_key),
        PathBuf::from(&env_dir),
        scratch.clone(),
    ];
    let mut checked = 0;
    let mut private = 0;
    for rel in files_under(&root) {
        let path = root.join(&rel);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        checked += 1;
        let found = secrets.found_in(&bytes);
        if found.is_empty() {
            continue;
        }
        assert!(
            meant.iter().any(|m| path.starts_with(m)),
            "{rel} holds {found:?}"
        );
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{rel} holds {found:?} with mode {mode:o}");
        private += 1;
    }
    assert!(checked > 50, "only {checked} files looked at");
    assert!(
        private >= 4,
        "the .env files and keys should hold secrets ({private})"
    );
    // No temp file was left, and the store has files.
    assert!(
        files_under(&tmp).is_empty(),
        "left in TMPDIR: {:?}",
        files_under(&tmp)
    );
    assert!(!files_under(lb.repo_path()).is_empty());
}
