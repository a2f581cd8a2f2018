//! The crash campaign: backups and prunes killed with SIGKILL at seeded
//! random moments (during chunking, pack upload, index write, snapshot
//! write, repacking, index replacement, deletion). After every kill the
//! next backup must complete; every few trials, and at the end,
//! `verify --read-data` must be clean and every snapshot must restore
//! byte-identical to what it was made from.
//!
//! The campaign is set by `LIFEBOAT_CRASH_TRIALS` (default 50) and
//! `LIFEBOAT_CRASH_SEED` (default 1); `scripts/reliability.sh` runs a long
//! one and prints the figures for docs/RELIABILITY.md.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lifeboat_testkit::data::Rng;
use lifeboat_testkit::Lifeboat;
use sha2::{Digest, Sha256};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A stream that shares most of its bytes with the one before it, so
/// backups deduplicate and prunes find partly-used packs.
fn content(seed: u64, base: &[u8]) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut v = base.to_vec();
    for _ in 0..8 {
        let at = rng.below(v.len() as u64 - 70_000) as usize;
        rng.fill(&mut v[at..at + 64 * 1024]);
    }
    v
}

#[test]
fn backups_and_prunes_killed_at_random_moments_lose_nothing() {
    let trials = env_num("LIFEBOAT_CRASH_TRIALS", 50);
    let seed = env_num("LIFEBOAT_CRASH_SEED", 1);
    campaign(&Lifeboat::local(), "local", trials, seed);
}

/// The same on an S3 repository (a real S3 server process): kills land
/// between PUTs and DELETEs of a store that has no rename.
#[test]
fn backups_and_prunes_killed_on_an_s3_store_lose_nothing() {
    let trials = env_num("LIFEBOAT_CRASH_S3_TRIALS", 15);
    let seed = env_num("LIFEBOAT_CRASH_SEED", 1);
    let server = lifeboat_testkit::S3Server::start();
    let lb = Lifeboat::s3(&server, &format!("lb-crash-{}", std::process::id()));
    campaign(&lb, "s3", trials, seed);
}

fn campaign(lb: &Lifeboat, store: &str, trials: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    lb.init();
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let mut base = vec![0u8; 6 << 20];
    Rng::new(seed ^ 0x5eed).fill(&mut base);
    // tag -> SHA-256 of what that snapshot must restore to.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut n = 0u64;
    let backup = |lb: &Lifeboat, data: &[u8], n: &mut u64| -> (String, std::process::Child) {
        *n += 1;
        let tag = format!("t{n}");
        let file = lb.path(&format!("in-{tag}.bin"));
        std::fs::write(&file, data).unwrap();
        let child = lb
            .command(&[
                "backup",
                "--backup-key-file",
                &bk,
                "--stdin-from-command",
                &format!("cat {}", file.display()),
                "--item",
                "data.bin",
                "--tag",
                &tag,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        (tag, child)
    };
    // Learn how long a backup and a prune take here, to aim the kills.
    let t = Instant::now();
    let data = content(0, &base);
    let (tag, mut c) = backup(lb, &data, &mut n);
    assert!(c.wait().unwrap().success());
    expected.insert(tag, hex::encode(Sha256::digest(&data)));
    let backup_ms = t.elapsed().as_millis().max(50) as u64;
    let t = Instant::now();
    lb.run(&["prune", "--restore-key-file", &rk]).ok();
    let prune_ms = t.elapsed().as_millis().max(50) as u64;

    let mut killed = 0;
    let mut finished_anyway = 0;
    let mut verified = 0;
    for trial in 0..trials {
        let data = content(trial + 1, &base);
        let hash = hex::encode(Sha256::digest(&data));
        let prune_trial = trial % 3 == 2;
        let (tag, mut child) = if prune_trial {
            lb.run(&["forget", "--keep-last", "4", "--restore-key-file", &rk])
                .ok();
            let child = lb
                .command(&["prune", "--max-unused", "1", "--restore-key-file", &rk])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            (None, child)
        } else {
            let (tag, child) = backup(lb, &data, &mut n);
            (Some(tag), child)
        };
        let window = if prune_trial { prune_ms } else { backup_ms };
        std::thread::sleep(Duration::from_millis(rng.below(window + window / 4)));
        match child.try_wait().unwrap() {
            Some(_) => finished_anyway += 1,
            None => {
                child.kill().unwrap();
                killed += 1;
            }
        }
        let _ = child.wait();
        if let Some(tag) = tag {
            // Committed before the kill, or not at all.
            expected.insert(tag, hash);
        }
        // The next backup completes (the dead process's lock is stale).
        let data = content(10_000 + trial, &base);
        let (tag, mut c) = backup(lb, &data, &mut n);
        assert!(
            c.wait().unwrap().success(),
            "trial {trial}: the next backup failed"
        );
        expected.insert(tag, hex::encode(Sha256::digest(&data)));
        if trial % 10 == 9 || trial + 1 == trials {
            let v = lb.verify_read_data();
            assert_eq!(
                v.code, 0,
                "trial {trial}: verify: {}\n{}",
                v.stdout, v.stderr
            );
            assert_eq!(
                v.json()["problems"],
                serde_json::json!([]),
                "trial {trial}: {}",
                v.stdout
            );
            for s in lb.snapshots() {
                let tag = s["tags"][0].as_str().unwrap().to_string();
                let to = lb.path("restored.bin");
                let _ = std::fs::remove_file(&to);
                lb.restore_item(s["id"].as_str().unwrap(), "data.bin", &to)
                    .ok();
                let got = hex::encode(Sha256::digest(std::fs::read(&to).unwrap()));
                assert_eq!(
                    Some(&got),
                    expected.get(&tag),
                    "trial {trial}: snapshot {tag}"
                );
                verified += 1;
            }
        }
    }
    eprintln!(
        "crash campaign ({store} store) seed {seed}: {trials} trials, {killed} killed, {finished_anyway} finished before the kill, \
         {verified} snapshot restores verified, 0 lost"
    );
}
