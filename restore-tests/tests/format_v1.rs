//! A repository written in format 1 by the last binary that wrote it
//! (restore-tests/fixtures/repo-v1) still restores whole with today's
//! binary, with a warning that it is not authenticated; `lifeboat upgrade`
//! turns it into format 2, after which every item restores the same, old
//! backup keys are refused until re-issued, and a restore key that was not
//! given to the upgrade authenticates its own keyring later.

use std::path::{Path, PathBuf};

use lifeboat_testkit::{mariadb::TestDb, Lifeboat};

const EXIT_DAMAGED: i32 = 4;
const EXIT_KEY: i32 = 5;

/// A private copy of the fixture (keys made 0600 again: git keeps no modes).
fn fixture() -> Lifeboat {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/repo-v1");
    let mut lb = Lifeboat::local();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(lb.dir.path())
        .status()
        .expect("cp");
    assert!(status.success());
    for k in ["restore.key", "second.key", "backup.key"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(lb.path(k), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    lb.restore_key = lb.path("restore.key");
    lb.backup_key = lb.path("backup.key");
    lb
}

fn sha256_lines(dir: &Path) -> String {
    let mut files = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p
                .file_name()
                .is_some_and(|n| n != ".lifeboat-objects.jsonl")
            {
                let rel = p.strip_prefix(root).expect("inside").display().to_string();
                out.push((format!("./{rel}"), lifeboat_testkit::sha256_file(&p)));
            }
        }
    }
    walk(dir, dir, &mut files);
    files.sort();
    files.iter().map(|(p, h)| format!("{h}  {p}\n")).collect()
}

fn git_refs(dir: &Path) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["for-each-ref", "--format=%(objectname) %(refname)"])
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Restore every source of the newest snapshot and every item of the first
/// one, and compare each with what the fixture recorded.
fn restore_everything(lb: &Lifeboat, key: &Path, round: &str) {
    let k = key.display().to_string();
    let snaps = lb.snapshots_with(&k);
    let first = snaps[0]["id"].as_str().expect("id").to_string();
    // The fixture's newest snapshot (a later test backup may follow it).
    let nightly = snaps
        .iter()
        .rfind(|s| s["tags"][0] == "nightly")
        .and_then(|s| s["id"].as_str())
        .expect("a nightly snapshot")
        .to_string();
    let stream = lb.path(&format!("stream-{round}.txt"));
    let out = lb
        .run(&[
            "restore",
            "--restore-key-file",
            &k,
            &first,
            "--item",
            "stream.txt",
            "--to",
            stream.to_str().expect("utf-8"),
        ])
        .ok();
    let want = std::fs::read_to_string(lb.path("stream.sha256")).expect("fixture");
    assert_eq!(
        lifeboat_testkit::sha256_file(&stream),
        want.split_whitespace().next().expect("hash"),
        "{}",
        out.stderr
    );

    let objects: PathBuf = lb.path(&format!("objects-{round}"));
    lb.run(&[
        "restore",
        "--restore-key-file",
        &k,
        &nightly,
        "--source",
        "objects",
        "--to",
        objects.to_str().expect("utf-8"),
    ])
    .ok();
    assert_eq!(
        sha256_lines(&objects),
        std::fs::read_to_string(lb.path("objects.sha256")).expect("fixture")
    );

    let git = lb.path(&format!("git-{round}"));
    lb.run(&[
        "restore",
        "--restore-key-file",
        &k,
        &nightly,
        "--source",
        "git",
        "--to",
        git.to_str().expect("utf-8"),
    ])
    .ok();
    assert_eq!(
        git_refs(&git),
        std::fs::read_to_string(lb.path("git-refs.txt")).expect("fixture")
    );

    // The replay reads every table back and compares row counts and
    // content checksums with the manifest (exit 4 on any difference).
    let db = TestDb::unborn(&format!("fmt1{round}"));
    let out = lb
        .run(&[
            "restore",
            "--json",
            "--restore-key-file",
            &k,
            &nightly,
            "--source",
            "mysql",
            "--target",
            &db.url(),
        ])
        .ok();
    let report = out.json();
    let tables = report["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 2, "{report}");
    for t in tables {
        assert_eq!(t["checksum_matches"], true, "{t}");
        assert_eq!(t["rows_expected"], t["rows_found"], "{t}");
    }
    assert_eq!(
        db.sql("SELECT name FROM patients WHERE id = 3").trim(),
        "Chi"
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM v_visits").trim(),
        "2",
        "the view works"
    );
}

trait SnapshotsWith {
    fn snapshots_with(&self, key: &str) -> Vec<serde_json::Value>;
}

impl SnapshotsWith for Lifeboat {
    fn snapshots_with(&self, key: &str) -> Vec<serde_json::Value> {
        let out = self
            .run(&["snapshots", "--json", "--restore-key-file", key])
            .ok();
        out.json().as_array().cloned().unwrap_or_default()
    }
}

#[test]
fn a_format_1_repository_restores_whole_then_upgrades_to_format_2() {
    let lb = fixture();
    let rk = lb.restore_key.display().to_string();

    // Format 1 is not authenticated: refused unless the owner says to
    // trust the store as it is (anyone with write access could have
    // replaced it whole).
    let out = lb
        .run(&["snapshots", "--restore-key-file", &rk])
        .code(EXIT_DAMAGED);
    assert!(
        out.stderr.contains("not authenticated") && out.stderr.contains("--trust-unauthenticated"),
        "{}",
        out.stderr
    );
    let mut lb = lb;
    lb.set_env("LIFEBOAT_TRUST_UNAUTHENTICATED", "true");
    let old = lb.snapshots_with(&rk);
    assert_eq!(old.len(), 3);
    // Trusted: everything restores, with the warning.
    let out = lb.run(&["snapshots", "--restore-key-file", &rk]).ok();
    assert!(
        out.stderr.contains("format 1") && out.stderr.contains("lifeboat upgrade"),
        "{}",
        out.stderr
    );
    restore_everything(&lb, &lb.restore_key, "v1");
    lb.run(&["verify", "--read-data", "--restore-key-file", &rk])
        .ok();

    // Upgrade with the first restore key.
    let out = lb
        .run(&["upgrade", "--json", "--restore-key-file", &rk])
        .ok();
    let report = out.json();
    assert_eq!(report["from_version"], 1);
    assert_eq!(report["to_version"], 2);
    assert_eq!(report["snapshots"].as_object().expect("map").len(), 3);
    assert_eq!(
        report["keys_authenticated"].as_array().expect("list").len(),
        1
    );
    assert_eq!(report["keys_pending"].as_array().expect("list").len(), 1);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lb.repo_path().join("config")).expect("config"))
            .expect("json");
    assert_eq!(config["version"], 2);
    assert!(config["signature"].is_string() && config.get("mac").is_none());

    // The same snapshots (new ids, same times and tags); no warning.
    let new = lb.snapshots_with(&rk);
    assert_eq!(new.len(), 3);
    for (a, b) in old.iter().zip(&new) {
        assert_eq!(a["time"], b["time"]);
        assert_eq!(a["tags"], b["tags"]);
        assert_eq!(
            report["snapshots"][a["id"].as_str().expect("id")],
            b["id"],
            "the report maps the old id to the new"
        );
    }
    // Format 2: no trust needed any more.
    lb.set_env("LIFEBOAT_TRUST_UNAUTHENTICATED", "false");
    let out = lb.run(&["snapshots", "--restore-key-file", &rk]).ok();
    assert!(!out.stderr.contains("format 1"), "{}", out.stderr);
    restore_everything(&lb, &lb.restore_key, "v2");
    lb.run(&["verify", "--read-data", "--restore-key-file", &rk])
        .ok();
    // Every old file is gone: each index/snapshot/state file is tagged.
    let again = lb
        .run(&["upgrade", "--json", "--restore-key-file", &rk])
        .ok();
    assert_eq!(again.json()["leftovers_removed"], 0);

    // The old backup key pins nothing: refused until re-issued.
    let bk = lb.backup_key.display().to_string();
    let out = lb
        .run(&[
            "backup",
            "--backup-key-file",
            &bk,
            "--stdin-from-command",
            "echo x",
            "--item",
            "x",
        ])
        .code(EXIT_KEY);
    assert!(out.stderr.contains("export-backup-key"), "{}", out.stderr);
    let b2 = lb.path("backup2.key");
    lb.run(&[
        "key",
        "export-backup-key",
        "--restore-key-file",
        &rk,
        "--to",
        b2.to_str().expect("utf-8"),
    ])
    .ok();
    let text = std::fs::read_to_string(&b2).expect("key");
    assert!(text.contains("config-verify-key: ") && text.contains("data-recipient: "));
    lb.run(&[
        "backup",
        "--backup-key-file",
        b2.to_str().expect("utf-8"),
        "--stdin-from-command",
        "echo x",
        "--item",
        "x",
    ])
    .ok();

    // The second restore key was not given: refused, with what to do.
    // Its own holder cannot accept its keyring (a storage-only attacker
    // could plant exactly that); the owner authenticates it with both keys.
    let second = lb.path("second.key").display().to_string();
    let out = lb
        .run(&["snapshots", "--restore-key-file", &second])
        .code(EXIT_DAMAGED);
    assert!(out.stderr.contains("--also-key"), "{}", out.stderr);
    let out = lb
        .run(&[
            "upgrade",
            "--trust-unauthenticated",
            "--restore-key-file",
            &second,
        ])
        .code(EXIT_DAMAGED);
    assert!(out.stderr.contains("not authenticated"), "{}", out.stderr);
    let out = lb
        .run(&[
            "upgrade",
            "--json",
            "--restore-key-file",
            &rk,
            "--also-key",
            &second,
        ])
        .ok();
    assert_eq!(
        out.json()["keys_authenticated"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(lb.snapshots_with(&second).len(), 4);
    restore_everything(&lb, &lb.path("second.key"), "second");
}
