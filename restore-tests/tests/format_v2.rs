//! A repository written in format 2 by the last binary that wrote it
//! (restore-tests/fixtures/repo-v2) restores whole with today's binary,
//! which also still backs up into it as format 2 (clear object details in
//! the state, so that an older binary reads it); `lifeboat upgrade` turns
//! it into format 3: every objects state is written again without the
//! SHA-256s, headers and modes the backup key must not read, the snapshots
//! naming them get new ids, everything restores the same, and the next
//! backups read the objects once and then carry them by sealed info lines.
//! An upgrade killed after writing its new files converges when run again.

mod fixture;

use std::path::Path;

use fixture::{restore_everything, sha256_lines, SnapshotsWith};
use lifeboat_testkit::forge::Store;
use lifeboat_testkit::Lifeboat;

/// (name, parsed body) of every objects state file, read with the backup key.
fn objects_states(lb: &Lifeboat) -> Vec<(String, serde_json::Value)> {
    Store::new(lb.repo_path())
        .open_all("state", &lb.backup_key)
        .into_iter()
        .map(|(n, b)| (n, serde_json::from_slice(&b).expect("state json")))
        .filter(|(_, v): &(String, serde_json::Value)| v["objects"].is_array())
        .collect()
}

/// Whether a state holds anything the backup key must not read in format 3.
fn in_clear(state: &serde_json::Value) -> bool {
    state["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .any(|e| e.get("sha256").is_some() || e.get("meta").is_some())
}

/// `backup --source objects` of the config `cfg` with the backup key `key`.
fn backup_objects(lb: &Lifeboat, cfg: &Path, key: &Path) -> lifeboat_testkit::Output {
    lb.run(&[
        "--config",
        cfg.to_str().expect("utf-8"),
        "--backup-key-file",
        key.to_str().expect("utf-8"),
        "backup",
        "--source",
        "objects",
    ])
}

/// A backup of `cfg` with the fixture's backup key; its objects facts.
fn backup_dir(lb: &Lifeboat, cfg: &Path) -> serde_json::Value {
    backup_objects(lb, cfg, &lb.backup_key).ok();
    let snaps = lb.snapshots();
    snaps.last().expect("snapshot")["sources"]["objects"]["facts"].clone()
}

#[test]
fn a_format_2_repository_restores_then_upgrades_to_format_3_without_object_details_in_states() {
    let lb = fixture::fixture("repo-v2");
    let rk = lb.restore_key.display().to_string();
    assert_eq!(lb.snapshots_with(&rk).len(), 3);
    restore_everything(&lb, &lb.restore_key, "v2a");
    lb.run(&["verify", "--read-data", "--restore-key-file", &rk])
        .ok();
    let states = objects_states(&lb);
    assert_eq!(states.len(), 2, "one per nightly");
    assert!(states.iter().all(|(_, s)| in_clear(s)), "format 2 states");

    // Today's binary backs up into a format-2 repository as format 2.
    let docs = lb.path("docs");
    std::fs::create_dir_all(docs.join("a")).expect("mkdir");
    std::fs::write(docs.join("a/jane-doe-consent.pdf"), b"signed by Jane Doe\n").expect("write");
    std::fs::write(docs.join("b.txt"), vec![7u8; 70_000]).expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(docs.join("b.txt"), std::fs::Permissions::from_mode(0o640))
            .expect("chmod");
    }
    let cfg = lb.path("docs.toml");
    std::fs::write(&cfg, format!("[objects]\npath = \"{}\"\n", docs.display())).expect("config");
    let facts = backup_dir(&lb, &cfg);
    assert_eq!(facts["fetched"], 2);
    let states = objects_states(&lb);
    assert_eq!(states.len(), 3);
    assert!(states.iter().all(|(_, s)| in_clear(s) && s["version"] == 1));

    // Keep the files an interrupted upgrade would leave behind.
    let before: Vec<(String, String, Vec<u8>)> = ["snapshots", "state"]
        .iter()
        .flat_map(|dir| {
            let store = Store::new(lb.repo_path());
            store
                .files(dir)
                .into_iter()
                .map(|n| (dir.to_string(), n.clone(), store.read(dir, &n)))
                .collect::<Vec<_>>()
        })
        .collect();

    let out = lb
        .run(&["upgrade", "--json", "--restore-key-file", &rk])
        .ok();
    let report = out.json();
    assert_eq!(report["from_version"], 2);
    assert_eq!(report["to_version"], 3);
    assert_eq!(report["states_rewritten"], 3, "{report}");
    let renamed = report["snapshots"].as_object().expect("map").clone();
    assert_eq!(renamed.len(), 3, "the snapshots naming an objects state");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lb.repo_path().join("config")).expect("config"))
            .expect("json");
    assert_eq!(config["version"], 3);
    let states = objects_states(&lb);
    assert_eq!(states.len(), 3);
    for (name, s) in &states {
        assert!(!in_clear(s), "state {name} still holds object details");
        let text = s.to_string();
        assert!(!text.contains("Jane") && !text.contains("jane"), "{text}");
    }
    let after = lb.snapshots_with(&rk);
    assert_eq!(after.len(), 4);
    restore_everything(&lb, &lb.restore_key, "v2b");
    lb.run(&["verify", "--read-data", "--restore-key-file", &rk])
        .ok();

    // Killed before it removed the old files: run again, it converges
    // (the old snapshots are removed, no third copy is written).
    let store = Store::new(lb.repo_path());
    for (dir, name, bytes) in &before {
        if (dir == "snapshots" && renamed.contains_key(name)) || dir == "state" {
            store.put(dir, bytes);
        }
    }
    assert_eq!(lb.snapshots_with(&rk).len(), 7, "old and new side by side");
    let again = lb
        .run(&["upgrade", "--json", "--restore-key-file", &rk])
        .ok()
        .json();
    assert_eq!(
        again["snapshots"].as_object().map(|m| m.len()),
        Some(0),
        "{again}"
    );
    let ids = |v: &[serde_json::Value]| -> Vec<String> {
        v.iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(ids(&lb.snapshots_with(&rk)), ids(&after));
    assert!(objects_states(&lb).iter().all(|(_, s)| !in_clear(s)));

    // The next backup reads the objects once more (their details are no
    // longer in the state), the one after carries them by sealed lines;
    // both restore byte for byte, with their modes.
    let facts = backup_dir(&lb, &cfg);
    assert_eq!(
        (facts["fetched"].clone(), facts["carried"].clone()),
        (2.into(), 0.into())
    );
    let facts = backup_dir(&lb, &cfg);
    assert_eq!(
        (facts["fetched"].clone(), facts["carried"].clone()),
        (0.into(), 2.into())
    );
    let newest = objects_states(&lb)
        .into_iter()
        .find(|(_, s)| s["objects"][0]["info"].is_object())
        .expect("a format-3 state");
    assert_eq!(newest.1["version"], 2);
    let to = lb.path("docs-restored");
    lb.run(&[
        "--config",
        cfg.to_str().expect("utf-8"),
        "restore",
        "--restore-key-file",
        &rk,
        "latest",
        "--source",
        "objects",
        "--to",
        to.to_str().expect("utf-8"),
    ])
    .ok();
    assert_eq!(sha256_lines(&to), sha256_lines(&docs));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(to.join("b.txt"))
            .expect("restored")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    }
    lb.run(&["verify", "--read-data", "--restore-key-file", &rk])
        .ok();
}

/// Whoever can write the store can put back the config of format 2 (it is
/// authentic: signed by the owner before the upgrade). A backup key issued
/// after the upgrade pins format 3 and refuses it, so no backup shows the
/// host objects' details again; the key issued before keeps working, as
/// the upgrade says.
#[test]
fn a_config_put_back_to_format_2_is_refused_by_a_key_issued_for_format_3() {
    let lb = fixture::fixture("repo-v2");
    let rk = lb.restore_key.display().to_string();
    let old_config = std::fs::read(lb.repo_path().join("config")).expect("config");
    let out = lb.run(&["upgrade", "--restore-key-file", &rk]).ok();
    assert!(out.stdout.contains("export-backup-key"), "{}", out.stdout);
    let new_key = lb.path("backup3.key");
    lb.run(&[
        "key",
        "export-backup-key",
        "--restore-key-file",
        &rk,
        "--to",
        new_key.to_str().expect("utf-8"),
    ])
    .ok();
    let text = std::fs::read_to_string(&new_key).expect("key");
    assert!(text.contains("minimum-format: 3"), "{text}");

    std::fs::write(lb.repo_path().join("config"), &old_config).expect("roll back");
    let docs = lb.path("docs");
    std::fs::create_dir_all(&docs).expect("mkdir");
    std::fs::write(docs.join("x.txt"), b"x").expect("write");
    let cfg = lb.path("docs.toml");
    std::fs::write(&cfg, format!("[objects]\npath = \"{}\"\n", docs.display())).expect("config");
    let before = Store::new(lb.repo_path()).files("snapshots");
    let out = backup_objects(&lb, &cfg, &new_key).code(4);
    assert!(
        out.stderr.contains("issued for format 3") && out.stderr.contains("rollback"),
        "{}",
        out.stderr
    );
    assert_eq!(Store::new(lb.repo_path()).files("snapshots"), before);
    // The key issued before the upgrade pins format 2: it still backs up
    // (in format 2, as the config says), which is why the upgrade says to
    // re-issue it.
    backup_objects(&lb, &cfg, &lb.backup_key).ok();
}

/// A snapshot forgotten but not yet pruned leaves its state file behind,
/// which no snapshot names: the upgrade removes it (as prune would), so no
/// state keeps objects' details in clear.
#[test]
fn the_upgrade_leaves_no_unnamed_state_in_clear() {
    let lb = fixture::fixture("repo-v2");
    let rk = lb.restore_key.display().to_string();
    let first_nightly = lb
        .snapshots_with(&rk)
        .iter()
        .find(|s| s["tags"][0] == "nightly")
        .and_then(|s| s["id"].as_str())
        .expect("a nightly")
        .to_string();
    lb.run(&["forget", "--restore-key-file", &rk, &first_nightly])
        .ok();
    assert!(
        objects_states(&lb)
            .iter()
            .filter(|(_, s)| in_clear(s))
            .count()
            == 2
    );
    let report = lb
        .run(&["upgrade", "--json", "--restore-key-file", &rk])
        .ok()
        .json();
    assert_eq!(report["states_rewritten"], 1, "{report}");
    assert!(
        report["orphan_states_removed"].as_u64() >= Some(1),
        "{report}"
    );
    assert!(objects_states(&lb).iter().all(|(_, s)| !in_clear(s)));
    restore_everything(&lb, &lb.restore_key, "v2c");
}
