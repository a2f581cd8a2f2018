//! A damaged store: flipping one byte in any stored file is detected by
//! `verify --read-data`, which names the file (and, for data, the snapshots
//! and items that need it) and exits with the "damaged" status.

use std::path::Path;

use lifeboat_testkit::{data, files_under, Lifeboat};

const EXIT_DAMAGED: i32 = 4;
const EXIT_KEY: i32 = 5;

fn copy_dir(from: &Path, to: &Path) {
    for rel in files_under(from) {
        let dst = to.join(&rel);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from.join(&rel), &dst).expect("copy");
    }
}

#[test]
fn one_flipped_byte_in_any_stored_file_is_found_and_named() {
    let lb = Lifeboat::local();
    lb.init();
    for (i, item) in ["db.sql", "uploads.tar"].iter().enumerate() {
        let src = lb.path(item);
        data::write_mixed_stream(&src, 3 << 20, i as u64);
        lb.backup_command(&format!("cat '{}'", src.display()), item, &[])
            .ok();
    }
    lb.verify_read_data().ok();
    let pristine = lb.path("pristine");
    copy_dir(lb.repo_path(), &pristine);
    let files = files_under(&pristine);
    assert!(
        files.iter().any(|f| f.starts_with("data/"))
            && files.iter().any(|f| f.starts_with("index/"))
    );

    for rel in &files {
        // Fresh copy of the pristine repository, then one byte flipped in
        // the middle of one file.
        let repo = lb.repo_path();
        std::fs::remove_dir_all(repo).expect("rm repo");
        copy_dir(&pristine, repo);
        let path = repo.join(rel);
        let mut bytes = std::fs::read(&path).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");

        let name = rel.rsplit('/').next().expect("name");
        let k = lb.restore_key.display().to_string();
        let out = lb.run(&["verify", "--read-data", "--restore-key-file", &k]);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            out.code == EXIT_DAMAGED || (out.code == EXIT_KEY && rel.starts_with("keys/")),
            "{rel}: verify exited {}:\n{all}",
            out.code
        );
        let expected = if rel == "config" { "config" } else { name };
        assert!(
            all.contains(expected),
            "{rel}: the report does not name it:\n{all}"
        );
        if rel.starts_with("data/") {
            assert!(
                all.contains("needed by snapshot"),
                "{rel}: no snapshot named:\n{all}"
            );
        }
    }
}
