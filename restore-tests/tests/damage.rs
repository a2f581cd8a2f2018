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

fn remove_files(dir: &Path) {
    for rel in files_under(dir) {
        std::fs::remove_file(dir.join(rel)).expect("rm");
    }
}

/// Each kind of loss, on a fresh copy of one repository of two snapshots
/// (one item each, no data in common): what the lost file held is named,
/// what it did not hold still restores byte-identical, and `repair index`
/// rebuilds a lost or damaged index from the packs' own headers.
#[test]
fn a_lost_file_spares_what_it_did_not_hold_and_repair_rebuilds_the_index() {
    let lb = Lifeboat::local();
    lb.init();
    let repo = lb.repo_path().to_path_buf();
    let mut packs_of = Vec::new();
    let mut want = Vec::new();
    for (i, item) in ["db.sql", "uploads.tar"].iter().enumerate() {
        let before: Vec<String> = files_under(&repo.join("data"));
        let src = lb.path(item);
        data::write_mixed_stream(&src, 3 << 20, 40 + i as u64);
        want.push(lifeboat_testkit::sha256_file(&src));
        lb.backup_command(&format!("cat '{}'", src.display()), item, &[])
            .ok();
        let after = files_under(&repo.join("data"));
        packs_of.push(
            after
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect::<Vec<_>>(),
        );
    }
    let ids: Vec<String> = lb
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    let pristine = lb.path("pristine");
    copy_dir(&repo, &pristine);
    let k = lb.restore_key.display().to_string();
    let reset = || {
        std::fs::remove_dir_all(&repo).expect("rm repo");
        copy_dir(&pristine, &repo);
    };
    let restores = |snap: usize, item: &str, expect: &str| {
        let out = lb.path(&format!("{item}.{snap}.out"));
        let _ = std::fs::remove_file(&out);
        lb.restore_item(&ids[snap], item, &out).ok();
        assert_eq!(
            lifeboat_testkit::sha256_file(&out),
            expect,
            "{item} of snapshot {snap} differs"
        );
    };
    let verify = || {
        let v = lb.run(&["verify", "--read-data", "--restore-key-file", &k]);
        (v.code, format!("{}{}", v.stdout, v.stderr))
    };

    // Every index file lost: restores cannot find the blobs until `repair
    // index` reads the pack headers; then both snapshots are whole again.
    remove_files(&repo.join("index"));
    let lost = lb.restore_item(&ids[1], "uploads.tar", &lb.path("x.out"));
    assert_eq!(lost.code, EXIT_DAMAGED, "{}", lost.stderr);
    let r = lb.run(&["repair", "index", "--dry-run", "--restore-key-file", &k]);
    assert!(r.stdout.contains("would index"), "{}", r.stdout);
    assert!(files_under(&repo.join("index")).is_empty(), "dry run wrote");
    let r = lb.run(&["repair", "index", "--restore-key-file", &k]).ok();
    assert!(!r.stdout.contains("MISSING"), "{}", r.stdout);
    restores(0, "db.sql", &want[0]);
    restores(1, "uploads.tar", &want[1]);
    assert_eq!(verify().0, 0, "{}", verify().1);

    // A damaged index file: verify names it; repair replaces it.
    reset();
    let index_file = files_under(&repo.join("index"))
        .into_iter()
        .next()
        .expect("an index file");
    let path = repo.join("index").join(&index_file);
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    let (code, report) = verify();
    assert_eq!(code, EXIT_DAMAGED, "{report}");
    let name = index_file.rsplit('/').next().expect("name");
    assert!(report.contains(name), "{report}");
    let r = lb.run(&["repair", "index", "--restore-key-file", &k]).ok();
    assert!(r.stdout.contains("damaged index file"), "{}", r.stdout);
    assert!(!path.exists(), "the damaged index file was kept");
    assert_eq!(verify().0, 0, "{}", verify().1);
    restores(0, "db.sql", &want[0]);

    // The packs of the first backup lost: verify names that snapshot and
    // its item, the second snapshot restores, repair names what is missing.
    reset();
    for p in &packs_of[0] {
        std::fs::remove_file(repo.join("data").join(p)).expect("rm pack");
    }
    let (code, report) = verify();
    assert_eq!(code, EXIT_DAMAGED, "{report}");
    assert!(report.contains(&ids[0][..8]), "{report}");
    assert!(!report.contains(&ids[1][..8]), "{report}");
    restores(1, "uploads.tar", &want[1]);
    let failed = lb.restore_item(&ids[0], "db.sql", &lb.path("y.out"));
    assert_eq!(failed.code, EXIT_DAMAGED, "{}", failed.stderr);
    let r = lb.run(&["repair", "index", "--restore-key-file", &k]);
    assert_eq!(r.code, EXIT_DAMAGED, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("MISSING DATA snapshot {}", &ids[0][..12])),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains(&ids[1][..12]), "{}", r.stdout);
    restores(1, "uploads.tar", &want[1]);

    // A snapshot file cut short: verify names it; the other restores.
    reset();
    let snap_path = repo.join("snapshots").join(&ids[1]);
    let bytes = std::fs::read(&snap_path).expect("read snapshot");
    std::fs::write(&snap_path, &bytes[..bytes.len() / 2]).expect("truncate");
    let (code, report) = verify();
    assert_eq!(code, EXIT_DAMAGED, "{report}");
    assert!(report.contains(&ids[1]), "{report}");
    restores(0, "db.sql", &want[0]);
}
