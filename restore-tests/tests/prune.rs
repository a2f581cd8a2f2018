//! Retention: `forget` by policy (pre-migration snapshots always kept),
//! `prune` deletes only what no remaining snapshot needs (the repository
//! shrinks, every remaining snapshot restores byte-identical, verify is
//! clean), refuses while a backup runs, and needs the restore key.

use std::path::Path;

use lifeboat_testkit::Lifeboat;
use sha2::{Digest, Sha256};

fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// `len` bytes that do not compress or dedup, from `seed`.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(seed.to_le_bytes()).to_vec();
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

#[test]
fn forget_and_prune_free_space_and_keep_every_remaining_snapshot_whole() {
    let lb = Lifeboat::local();
    lb.init();
    let rk = lb.restore_key.display().to_string();
    let bk = lb.backup_key.display().to_string();
    // Five backups of 3 MB each: #2 is a pre-migration snapshot; #4 and #5
    // share their first 2 MB (so packs end up partly used).
    let shared = noise(99, 2_000_000);
    let mut contents = Vec::new();
    for i in 0..5u64 {
        let data = if i >= 3 {
            let mut d = shared.clone();
            d.extend_from_slice(&noise(i, 1_000_000));
            d
        } else {
            noise(i, 3_000_000)
        };
        let file = lb.path(&format!("in{i}.bin"));
        std::fs::write(&file, &data).unwrap();
        let tag = if i == 1 { "pre-migration" } else { "nightly" };
        lb.backup_command(
            &format!("cat {}", file.display()),
            "data.bin",
            &["--tag", tag],
        )
        .ok();
        contents.push(hex::encode(Sha256::digest(&data)));
    }
    let snaps = lb.snapshots();
    let ids: Vec<String> = snaps
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();

    // The backup key cannot forget.
    lb.run(&["forget", "--keep-last", "1", "--backup-key-file", &bk])
        .code(5);
    // Dry run: nothing changes.
    let before = size_of(lb.repo_path());
    let dry = lb
        .run(&[
            "forget",
            "--keep-last",
            "2",
            "--dry-run",
            "--restore-key-file",
            &rk,
        ])
        .ok();
    assert!(dry.stdout.contains("2 would be removed"), "{}", dry.stdout);
    lb.run(&["prune", "--dry-run", "--restore-key-file", &rk])
        .ok();
    assert_eq!(lb.snapshots().len(), 5);
    assert_eq!(size_of(lb.repo_path()), before);

    // Keep the last 2; the pre-migration one stays by its tag.
    let out = lb
        .run(&[
            "forget",
            "--keep-last",
            "2",
            "--json",
            "--restore-key-file",
            &rk,
        ])
        .ok();
    let plan = out.json();
    let removed: Vec<&str> = plan["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 2);
    assert!(removed.contains(&ids[0].as_str()) && removed.contains(&ids[2].as_str()));
    let left: Vec<String> = lb
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![ids[1].clone(), ids[3].clone(), ids[4].clone()]);

    // Prune: two snapshots' worth of unique data (6 MB) goes away.
    let out = lb.run(&["prune", "--json", "--restore-key-file", &rk]).ok();
    let r = out.json();
    assert!(
        r["packs_removed"].as_u64().unwrap() + r["packs_repacked"].as_u64().unwrap() >= 1,
        "{r}"
    );
    let after = size_of(lb.repo_path());
    assert!(
        after + 5_500_000 < before,
        "prune freed only {} bytes: {r}",
        before - after
    );
    // Kept snapshots restore byte-identical; verify reads every byte.
    for (i, id) in [(1usize, &ids[1]), (3, &ids[3]), (4, &ids[4])] {
        let to = lb.path(&format!("out{i}.bin"));
        lb.restore_item(id, "data.bin", &to).ok();
        let got = hex::encode(Sha256::digest(std::fs::read(&to).unwrap()));
        assert_eq!(got, contents[i], "snapshot {i}");
    }
    let v = lb.verify_read_data().ok();
    assert_eq!(v.json()["problems"], serde_json::json!([]), "{}", v.stdout);
    // A second prune finds nothing more to do.
    let r = lb
        .run(&["prune", "--json", "--restore-key-file", &rk])
        .ok()
        .json();
    assert_eq!(r["packs_removed"], 0, "{r}");
    assert_eq!(r["packs_repacked"], 0, "{r}");
    // And backups go on after a prune, deduplicating against what is left.
    let file = lb.path("in4.bin");
    let out = lb
        .backup_command(&format!("cat {}", file.display()), "data.bin", &[])
        .ok();
    assert_eq!(out.json()["stats"]["new_plain_bytes"], 0, "{}", out.stdout);
}

#[test]
fn prune_refuses_while_a_backup_runs() {
    let lb = Lifeboat::local();
    lb.init();
    let rk = lb.restore_key.display().to_string();
    let bk = lb.backup_key.display().to_string();
    let mut slow = lb
        .command(&[
            "backup",
            "--backup-key-file",
            &bk,
            "--stdin-from-command",
            "sleep 5; echo done",
            "--item",
            "slow",
        ])
        .spawn()
        .unwrap();
    // Wait for its lock (up to 30 s: a loaded machine starts it slowly).
    // Only a renamed lock counts: a `.tmp-` file is one still being
    // written (fsync can take a while under load), not yet a lock.
    let locks = lb.repo_path().join("locks");
    let locked = (0..3000).any(|_| {
        let seen = std::fs::read_dir(&locks)
            .map(|d| {
                d.flatten()
                    .any(|e| !e.file_name().to_string_lossy().starts_with(".tmp-"))
            })
            .unwrap_or(false);
        if !seen {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        seen
    });
    assert!(locked, "the backup never took its lock");
    let out = lb.run(&["prune", "--restore-key-file", &rk]).code(6);
    assert!(out.stderr.contains("lock"), "{}", out.stderr);
    assert!(slow.wait().unwrap().success());
    assert_eq!(lb.snapshots().len(), 1);
    lb.run(&["prune", "--restore-key-file", &rk]).ok();
    lb.verify_read_data().ok();
}

/// Two backups and a prune started over one another, with forgets between
/// rounds: every backup completes (waiting for a prune's exclusive lock if
/// it meets one), every prune either runs or refuses, and every snapshot
/// left restores byte-identical; verify --read-data finds nothing.
fn race(lb: &Lifeboat) {
    lb.init();
    let rk = lb.restore_key.display().to_string();
    let bk = lb.backup_key.display().to_string();
    let mut outcomes = (0, 0);
    let seed = |i: u64, b: u64| 100 + 2 * i + b;
    for i in 0..6u64 {
        let backups: Vec<_> = (0..2u64)
            .map(|b| {
                let file = lb.path(&format!("race{i}-{b}.bin"));
                std::fs::write(&file, noise(seed(i, b), 400_000)).unwrap();
                let tag = format!("f{i}-{b}");
                let cmd = format!("sleep 0.{}; cat {}", 1 + (i + b) % 3, file.display());
                lb.command(&[
                    "backup",
                    "--backup-key-file",
                    &bk,
                    "--stdin-from-command",
                    &cmd,
                    "--item",
                    "data.bin",
                    "--tag",
                    &tag,
                ])
                .spawn()
                .unwrap()
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis((i * 70) % 250));
        let p = lb.run(&["prune", "--restore-key-file", &rk]);
        match p.code {
            0 => outcomes.0 += 1,
            6 => outcomes.1 += 1,
            c => panic!("prune exited {c}: {}", p.stderr),
        }
        if i % 2 == 1 {
            lb.run(&["forget", "--keep-last", "3", "--restore-key-file", &rk])
                .ok();
        }
        for (b, mut backup) in backups.into_iter().enumerate() {
            assert!(backup.wait().unwrap().success(), "backup {i}-{b} failed");
        }
    }
    lb.run(&["prune", "--restore-key-file", &rk]).ok();
    let v = lb.verify_read_data().ok();
    assert_eq!(v.json()["problems"], serde_json::json!([]), "{}", v.stdout);
    let snaps = lb.snapshots();
    assert!(snaps.len() >= 3);
    for s in &snaps {
        let tag = s["tags"][0].as_str().unwrap();
        let (i, b) = tag[1..].split_once('-').unwrap();
        let (i, b): (u64, u64) = (i.parse().unwrap(), b.parse().unwrap());
        let to = lb.path(&format!("back-{tag}.bin"));
        lb.restore_item(s["id"].as_str().unwrap(), "data.bin", &to)
            .ok();
        assert_eq!(
            std::fs::read(&to).unwrap(),
            noise(seed(i, b), 400_000),
            "{tag}"
        );
    }
    eprintln!("prunes run: {}, refused: {}", outcomes.0, outcomes.1);
}

#[test]
fn backups_and_prunes_racing_leave_every_snapshot_whole() {
    race(&Lifeboat::local());
}

#[test]
fn backups_and_prunes_racing_on_s3_leave_every_snapshot_whole() {
    let server = lifeboat_testkit::S3Server::start();
    race(&Lifeboat::s3(
        &server,
        &format!("lb-race-{}", std::process::id()),
    ));
}
