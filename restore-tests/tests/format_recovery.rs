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
    let recover = |snapshot: Option<&str>| {
        let _ = std::fs::remove_file(&out);
        let run = Command::new("python3")
            .arg(&script)
            .arg(lb.repo_path())
            .arg(&lb.restore_key)
            .arg("clinic.sql")
            .arg(&out)
            .args(snapshot)
            .output()
            .expect("python3");
        assert!(
            run.status.success(),
            "recovery failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        sha256_file(&out)
    };
    // The newest snapshot by default, an older one by id prefix.
    assert_eq!(recover(None), sha256_file(&new));
    let snaps = lb.snapshots();
    let first = snaps[0]["id"].as_str().expect("id");
    assert_eq!(recover(Some(&first[..10])), sha256_file(&old));
}
