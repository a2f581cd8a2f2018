//! docs/FORMAT.md is complete enough to recover data without lifeboat: a
//! short Python script written from it, plus the stock `age` and `zstd`
//! tools, restores an item byte-identical.

use std::path::PathBuf;
use std::process::Command;

use lifeboat_testkit::{data, sha256_file, Lifeboat};

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

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/recover-by-hand.py");
    let out = lb.path("recovered.sql");
    let run = Command::new("python3")
        .arg(&script)
        .arg(lb.repo_path())
        .arg(&lb.restore_key)
        .arg("clinic.sql")
        .arg(&out)
        .output()
        .expect("python3");
    assert!(
        run.status.success(),
        "recovery failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    // The newest snapshot by default.
    assert_eq!(sha256_file(&out), sha256_file(&new));

    // An older snapshot by id prefix.
    let snaps = lb.snapshots();
    let first = snaps[0]["id"].as_str().expect("id");
    std::fs::remove_file(&out).expect("rm");
    let run = Command::new("python3")
        .arg(&script)
        .arg(lb.repo_path())
        .arg(&lb.restore_key)
        .arg("clinic.sql")
        .arg(&out)
        .arg(&first[..10])
        .output()
        .expect("python3");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(sha256_file(&out), sha256_file(&old));
}
