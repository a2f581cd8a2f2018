//! docs/FORMAT.md is complete enough to recover data without lifeboat: a
//! short Python script written from it, plus the stock `age` and `zstd`
//! tools, restores an item byte-identical.

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat_testkit::{data, sha256_file, Lifeboat};

fn recover_by_hand(lb: &Lifeboat, item: &str, out: &Path, snapshot: Option<&str>) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/recover-by-hand.py");
    let _ = std::fs::remove_file(out);
    let run = Command::new("python3")
        .arg(&script)
        .arg(lb.repo_path())
        .arg(&lb.restore_key)
        .arg(item)
        .arg(out)
        .args(snapshot)
        .output()
        .expect("python3");
    assert!(
        run.status.success(),
        "recovery failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    sha256_file(out)
}

#[test]
fn an_item_is_recovered_with_only_age_zstd_and_a_short_script() {
    let lb = Lifeboat::local();
    lb.init();
    let (old, new) = (lb.path("old.sql"), lb.path("new.sql"));
    data::write_mixed_stream(&old, 5 << 20, 1);
    data::write_mixed_stream(&new, 6 << 20, 2);
    lb.backup_command(&format!("cat '{}'", old.display()), "clinic.sql", &[])
        .ok();
    lb.backup_command(&format!("cat '{}'", new.display()), "clinic.sql", &[])
        .ok();

    let out = lb.path("recovered.sql");
    // The newest snapshot by default, an older one by id prefix.
    assert_eq!(
        recover_by_hand(&lb, "clinic.sql", &out, None),
        sha256_file(&new)
    );
    let snaps = lb.snapshots();
    let first = snaps[0]["id"].as_str().expect("id");
    assert_eq!(
        recover_by_hand(&lb, "clinic.sql", &out, Some(&first[..10])),
        sha256_file(&old)
    );
}

/// An object carried over by a later backup has its SHA-256 in an info
/// blob (format 3), which the script reads as FORMAT.md says; and with
/// every index file gone, the script finds blobs through the packs' own
/// (authenticated) headers.
#[test]
fn a_carried_object_is_recovered_by_hand_also_from_packs_no_index_names() {
    let mut lb = Lifeboat::local();
    lb.init();
    let docs = lb.path("docs");
    std::fs::create_dir_all(&docs).expect("mkdir");
    let scan = docs.join("scan.bin");
    data::write_mixed_stream(&scan, 3 << 20, 3);
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(&cfg, format!("[objects]\npath = \"{}\"\n", docs.display())).expect("config");
    lb.set_env("LIFEBOAT_CONFIG", cfg.to_str().expect("utf-8"));
    let bk = lb.backup_key.display().to_string();
    for _ in 0..2 {
        lb.run(&["backup", "--backup-key-file", &bk, "--source", "objects"])
            .ok();
    }
    let snaps = lb.snapshots();
    assert_eq!(snaps[1]["sources"]["objects"]["facts"]["carried"], 1);

    let out = lb.path("recovered.bin");
    assert_eq!(
        recover_by_hand(&lb, "scan.bin", &out, None),
        sha256_file(&scan)
    );
    for f in std::fs::read_dir(lb.repo_path().join("index")).expect("index dir") {
        std::fs::remove_file(f.expect("entry").path()).expect("remove");
    }
    assert_eq!(
        recover_by_hand(&lb, "scan.bin", &out, None),
        sha256_file(&scan)
    );
}
