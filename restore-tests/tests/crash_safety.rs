//! What happens when things go wrong during a backup: the process is killed
//! with SIGKILL at various points, the source command fails half-way, two
//! backups run at once. The repository must verify clean afterwards and the
//! next backup must reuse what was uploaded.

use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_testkit::{data, dir_size, files_under, sha256_file, Lifeboat};

const MIB: u64 = 1 << 20;

fn verify_clean(lb: &Lifeboat) {
    let v = lb.verify_read_data();
    assert_eq!(
        v.code, 0,
        "verify after a failure: {}\n{}",
        v.stdout, v.stderr
    );
    assert_eq!(
        v.json()["problems"].as_array().map(Vec::len),
        Some(0),
        "{}",
        v.stdout
    );
}

#[test]
fn kill_9_at_several_points_leaves_a_clean_repo_and_the_next_backup_reuses_uploads() {
    let lb = Lifeboat::local();
    lb.init();
    let src = lb.path("stream.bin");
    // Random bytes: what is stored is as large as what is read, so the
    // reuse check below is exact.
    {
        let mut rng = data::Rng::new(3);
        let mut buf = vec![0u8; (300 * MIB) as usize];
        rng.fill(&mut buf);
        std::fs::write(&src, &buf).expect("write stream");
    }
    let cmd = format!("cat '{}'", src.display());
    let packs = lb.repo_path().join("data");
    // Kill right at start (locks, index loading), then after 1, 3, 6 and 10
    // packs have reached the store (mid-upload, between index flushes).
    for (round, threshold) in [0u64, 16 * MIB, 48 * MIB, 96 * MIB, 160 * MIB]
        .into_iter()
        .enumerate()
    {
        let b = lb.backup_key.display().to_string();
        let mut child = lb
            .command(&[
                "backup",
                "--backup-key-file",
                &b,
                "--stdin-from-command",
                &cmd,
                "--item",
                "s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn backup");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if dir_size(&packs) >= threshold || Instant::now() > deadline {
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(
            status.code().is_none() || round == 0,
            "round {round}: backup ended before the kill"
        );
        assert!(
            lb.snapshots().is_empty(),
            "a killed backup must not leave a snapshot"
        );
        verify_clean(&lb);
    }
    // Complete packs only: a killed write leaves a `.tmp-*` file, which the
    // next backup deletes.
    let stored_before: u64 = files_under(&packs)
        .iter()
        .filter(|f| !f.rsplit('/').next().unwrap_or("").starts_with(".tmp-"))
        .map(|f| {
            std::fs::metadata(packs.join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    assert!(
        stored_before >= 100 * MIB,
        "the killed runs stored only {stored_before} bytes"
    );

    // Locks of the dead processes do not block the next backup, and
    // `unlock` removes them.
    let out = lb.backup_command(&cmd, "s", &[]).ok();
    let new = out.json()["stats"]["new_plain_bytes"]
        .as_u64()
        .expect("new_plain_bytes");
    assert!(
        new + stored_before * 9 / 10 <= 300 * MIB,
        "the final backup stored {new} new bytes although {stored_before} were already uploaded"
    );
    verify_clean(&lb);
    let leftovers = files_under(&packs)
        .into_iter()
        .filter(|f| f.contains(".tmp-"))
        .count();
    assert_eq!(
        leftovers, 0,
        "partial files of the killed runs were not cleaned up"
    );
    let restored = lb.path("restored.bin");
    lb.restore_item("latest", "s", &restored).ok();
    assert_eq!(sha256_file(&restored), sha256_file(&src));

    let locks_before = files_under(&lb.repo_path().join("locks")).len();
    assert!(
        locks_before >= 4,
        "killed runs should have left their locks ({locks_before})"
    );
    let b = lb.backup_key.display().to_string();
    let out = lb.run(&["unlock", "--backup-key-file", &b]).ok();
    assert!(
        out.stdout
            .contains(&format!("removed {locks_before} stale lock(s)")),
        "{}",
        out.stdout
    );
    assert!(files_under(&lb.repo_path().join("locks")).is_empty());
}

#[test]
fn a_command_that_fails_half_way_commits_no_snapshot() {
    let lb = Lifeboat::local();
    lb.init();
    let src = lb.path("part.bin");
    data::write_mixed_stream(&src, 40 * MIB, 5);
    let s = src.display().to_string();
    // Exits non-zero after writing output.
    let out = lb
        .backup_command(&format!("cat '{s}'; exit 7"), "db.sql", &[])
        .code(3);
    assert!(
        out.stderr.contains("exited with status 7"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("no snapshot was stored"),
        "{}",
        out.stderr
    );
    // Killed by a signal half-way through its output.
    let out = lb
        .backup_command(
            &format!("head -c 20000000 '{s}'; kill -9 $$"),
            "db.sql",
            &[],
        )
        .code(3);
    assert!(out.stderr.contains("killed by signal 9"), "{}", out.stderr);
    // A command that cannot start at all.
    lb.backup_command("/nonexistent/dump-tool", "db.sql", &[])
        .code(3);
    assert!(lb.snapshots().is_empty());
    verify_clean(&lb);
    // A good run after the failures commits, and reuses the uploaded part.
    let out = lb.backup_command(&format!("cat '{s}'"), "db.sql", &[]).ok();
    assert_eq!(lb.snapshots().len(), 1);
    assert!(
        out.json()["stats"]["new_plain_bytes"]
            .as_u64()
            .unwrap_or(u64::MAX)
            < 40 * MIB
    );
}

#[test]
fn concurrent_backups_into_one_repository_are_both_stored() {
    let lb = Lifeboat::local();
    lb.init();
    let (a, b) = (lb.path("a.bin"), lb.path("b.bin"));
    data::write_mixed_stream(&a, 64 * MIB, 11);
    data::write_mixed_stream(&b, 64 * MIB, 12);
    let key = lb.backup_key.display().to_string();
    let spawn = |src: &std::path::Path, item: &str| {
        let cmd = format!("cat '{}'", src.display());
        lb.command(&[
            "backup",
            "--backup-key-file",
            &key,
            "--stdin-from-command",
            &cmd,
            "--item",
            item,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
    };
    let (ca, cb) = (spawn(&a, "a"), spawn(&b, "b"));
    for c in [ca, cb] {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(lb.snapshots().len(), 2);
    verify_clean(&lb);
    for (item, src) in [("a", &a), ("b", &b)] {
        let to = lb.path(&format!("{item}.out"));
        // Each item lives in exactly one of the two snapshots.
        let ids: Vec<String> = lb
            .snapshots()
            .iter()
            .map(|s| s["id"].as_str().unwrap_or("").to_string())
            .collect();
        let restored = ids
            .iter()
            .any(|id| lb.restore_item(id, item, &to).code == 0);
        assert!(restored, "item {item} not restorable from any snapshot");
        assert_eq!(sha256_file(&to), sha256_file(src));
    }
}
