//! A repository written in format 1 by the last binary that wrote it
//! (restore-tests/fixtures/repo-v1) still restores whole with today's
//! binary, with a warning that it is not authenticated; `lifeboat upgrade`
//! turns it into the current format, after which every item restores the same, old
//! backup keys are refused until re-issued, and a restore key that was not
//! given to the upgrade authenticates its own keyring later.

mod fixture;

use fixture::{restore_everything, SnapshotsWith};

const EXIT_DAMAGED: i32 = 4;
const EXIT_KEY: i32 = 5;

fn fixture() -> lifeboat_testkit::Lifeboat {
    fixture::fixture("repo-v1")
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
    assert_eq!(report["to_version"], 3);
    assert_eq!(report["snapshots"].as_object().expect("map").len(), 3);
    assert_eq!(
        report["keys_authenticated"].as_array().expect("list").len(),
        1
    );
    assert_eq!(report["keys_pending"].as_array().expect("list").len(), 1);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lb.repo_path().join("config")).expect("config"))
            .expect("json");
    assert_eq!(config["version"], 3);
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
