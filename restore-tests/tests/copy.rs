//! `lifeboat copy` into a replica made by `init --replica-of`: local → S3
//! (a real S3 server process) and S3 → local, each copy killed at random
//! moments while new snapshots keep arriving, then resumed. The replica's
//! `verify --read-data` is clean, every snapshot restores byte-identical
//! from the replica alone, a second copy with nothing new sends no pack,
//! and a snapshot the replica forgot never comes back.

use std::collections::BTreeMap;
use std::time::Duration;

use lifeboat_testkit::data::{self, Rng};
use lifeboat_testkit::{sha256_file, Lifeboat, S3Server};

const RUNBOOK: &str = include_str!("../../docs/DISASTER-RECOVERY.md");

/// Back up one new file as item `data.bin`; returns its SHA-256.
fn backup(lb: &Lifeboat, n: u64) -> String {
    let file = lb.path(&format!("in-{n}.bin"));
    data::write_mixed_stream(&file, 6 << 20, 100 + n);
    let bk = lb.backup_key.display().to_string();
    lb.run(&[
        "backup",
        "--backup-key-file",
        &bk,
        "--stdin-from-command",
        &format!("cat {}", file.display()),
        "--item",
        "data.bin",
        "--tag",
        &format!("n{n}"),
    ])
    .ok();
    sha256_file(&file)
}

/// Copy from `from` to `to` with the backup key, ten times after
/// `fresh` made a new snapshot to copy, each killed at a random moment
/// (aimed earlier when the copy finished first), then to the end.
fn copy_killed(lb: &Lifeboat, from: &str, to: &str, rng: &mut Rng, fresh: &mut dyn FnMut()) {
    let bk = lb.backup_key.display().to_string();
    let mut window = 1500u64;
    let mut killed = 0;
    for _ in 0..10 {
        fresh();
        let mut child = lb
            .command_at(from, &["copy", "--backup-key-file", &bk, "--to", to])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(window)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        } else {
            window = (window * 2 / 3).max(50);
        }
        let _ = child.wait();
    }
    let done = lb
        .run_at(
            from,
            &["copy", "--json", "--backup-key-file", &bk, "--to", to],
        )
        .ok();
    // Verified when it copied anything (a killed copy may have finished).
    let verify = &done.json()["verify"];
    assert!(
        verify.is_null() || verify["problems"] == serde_json::json!([]),
        "{}",
        done.stdout
    );
    assert!(killed >= 3, "only {killed} of 10 copies were killed");
    eprintln!("copy {from} -> {to}: {killed} of 10 copies killed, then resumed");
}

/// Every snapshot of `repo` restores to what it was made from.
fn restores_from(lb: &Lifeboat, repo: &str, want: &BTreeMap<String, String>, forgotten: &str) {
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let snaps = lb
        .run_at(repo, &["snapshots", "--json", "--backup-key-file", &bk])
        .ok()
        .json();
    let snaps = snaps.as_array().unwrap();
    let tags: Vec<&str> = snaps
        .iter()
        .map(|s| s["tags"][0].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = want
        .keys()
        .map(String::as_str)
        .filter(|t| *t != forgotten)
        .collect();
    let mut got = tags.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "{repo}");
    for s in snaps {
        let tag = s["tags"][0].as_str().unwrap();
        let to = lb.path("restored.bin");
        let _ = std::fs::remove_file(&to);
        lb.run_at(
            repo,
            &[
                "restore",
                "--restore-key-file",
                &rk,
                s["id"].as_str().unwrap(),
                "--item",
                "data.bin",
                "--to",
                to.to_str().unwrap(),
            ],
        )
        .ok();
        assert_eq!(&sha256_file(&to), &want[tag], "{repo}: snapshot {tag}");
    }
    let v = lb
        .run_at(
            repo,
            &["verify", "--read-data", "--json", "--restore-key-file", &rk],
        )
        .ok();
    assert_eq!(v.json()["problems"], serde_json::json!([]), "{}", v.stdout);
}

#[test]
fn copies_killed_and_resumed_both_ways_restore_byte_identical_and_forgotten_stays_forgotten() {
    let server = S3Server::start();
    let bucket = format!("lb-copy-{}", std::process::id());
    server.create_bucket(&bucket);
    let mut lb = Lifeboat::local();
    for (k, v) in server.env() {
        lb.set_env(&k, &v);
    }
    lb.init();
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let source = lb.repo_url();
    let mut want = BTreeMap::new();
    let mut n = 0;
    for _ in 0..3 {
        n += 1;
        want.insert(format!("n{n}"), backup(&lb, n));
    }

    // local -> S3, made with the backup key alone.
    let s3 = format!("s3://{bucket}/replica");
    let made = lb
        .run_at(
            &s3,
            &["init", "--replica-of", &source, "--backup-key-file", &bk],
        )
        .ok();
    assert!(made.stdout.contains("replica"), "{}", made.stdout);
    // Not twice.
    lb.run_at(
        &s3,
        &["init", "--replica-of", &source, "--backup-key-file", &bk],
    )
    .code(2);
    let mut rng = Rng::new(7);
    copy_killed(&lb, &source, &s3, &mut rng, &mut || {
        n += 1;
        want.insert(format!("n{n}"), backup(&lb, n));
    });
    restores_from(&lb, &s3, &want, "");

    // Nothing new: no pack travels.
    let again = lb
        .run_at(
            &source,
            &["copy", "--json", "--backup-key-file", &bk, "--to", &s3],
        )
        .ok()
        .json();
    assert_eq!(again["packs_copied"], 0, "{again}");
    assert_eq!(again["snapshots_copied"], 0, "{again}");

    // A snapshot forgotten on the replica is never copied back.
    let n2 = lb
        .run_at(&s3, &["snapshots", "--json", "--backup-key-file", &bk])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tags"][0] == "n2")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap();
    lb.run_at(&s3, &["forget", "--restore-key-file", &rk, &n2])
        .ok();
    lb.run_at(&s3, &["prune", "--restore-key-file", &rk]).ok();
    let after = lb
        .run_at(
            &source,
            &["copy", "--json", "--restore-key-file", &rk, "--to", &s3],
        )
        .ok()
        .json();
    assert_eq!(after["snapshots_copied"], 0, "{after}");
    assert_eq!(after["snapshots_forgotten"], 1, "{after}");
    restores_from(&lb, &s3, &want, "n2");

    // `snapshots` and `status` show which copies hold which snapshot.
    let cfg = lb.path("copy.toml");
    std::fs::write(&cfg, format!("[copy]\nto = \"{s3}\"\n")).unwrap();
    let cfg = cfg.display().to_string();
    let listed = lb
        .run(&[
            "--config",
            &cfg,
            "snapshots",
            "--json",
            "--backup-key-file",
            &bk,
        ])
        .ok()
        .json();
    for s in listed.as_array().unwrap() {
        let held = s["copies"] == serde_json::json!([s3.clone()]);
        assert_eq!(held, s["tags"][0] != "n2", "{s}");
    }
    let status = lb
        .run(&[
            "--config",
            &cfg,
            "status",
            "--json",
            "--backup-key-file",
            &bk,
        ])
        .ok()
        .json();
    assert_eq!(status["copies"][0]["to"], s3.as_str());
    // n2 is missing from the copy on purpose (it forgot it): not behind.
    assert_eq!(
        status["copies"][0]["holds"], status["copies"][0]["of"],
        "{status}"
    );
    assert!(status["copies"][0]["missing_since"].is_null(), "{status}");

    // S3 -> local: the S3 replica is the source now.
    let local = lb.path("replica2").display().to_string();
    lb.run_at(
        &local,
        &["init", "--replica-of", &s3, "--backup-key-file", &bk],
    )
    .ok();
    copy_killed(&lb, &s3, &local, &mut rng, &mut || {
        n += 1;
        want.insert(format!("n{n}"), backup(&lb, n));
        lb.run_at(&source, &["copy", "--backup-key-file", &bk, "--to", &s3])
            .ok();
    });
    restores_from(&lb, &local, &want, "n2");

    // The store is gone: docs/DISASTER-RECOVERY.md, "restore from the
    // replica", each command verbatim, with the local replica as the store.
    std::fs::remove_dir_all(&source).unwrap();
    let new_store = lb.path("new-store").display().to_string();
    lb.set_env("LIFEBOAT_RESTORE_KEY_FILE", &rk);
    for doc in [
        "lifeboat verify --read-data",
        "lifeboat init --repo NEW-STORE --replica-of REPLICA",
        "lifeboat copy --repo REPLICA --to NEW-STORE",
    ] {
        assert!(RUNBOOK.contains(doc), "the runbook no longer says: {doc}");
        let mut args: Vec<String> = doc
            .split_whitespace()
            .skip(1)
            .map(|w| match w {
                "NEW-STORE" => new_store.clone(),
                "REPLICA" => local.clone(),
                w => w.to_string(),
            })
            .collect();
        // Without --repo, the runbook's recovery.toml names the replica.
        let repo = match args.iter().position(|a| a == "--repo") {
            Some(i) => {
                args.remove(i);
                args.remove(i)
            }
            None => local.clone(),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lb.run_at(&repo, &args).ok();
    }
    restores_from(&lb, &new_store, &want, "n2");

    // A repository that is not a replica is refused.
    let other = Lifeboat::local();
    other.init();
    let refused = lb.run_at(
        &local,
        &[
            "copy",
            "--backup-key-file",
            &bk,
            "--to",
            other.repo_url().as_str(),
        ],
    );
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("not a replica") || refused.stderr.contains("wrong key"),
        "{}",
        refused.stderr
    );
}
