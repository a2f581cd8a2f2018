//! A repository under S3 Object Lock, against moto (which implements
//! object lock: retention on PUT, GetObjectRetention, PutObjectRetention,
//! versioned buckets, a version delete refused while locked). Retention is
//! 8 seconds here (`LIFEBOAT_TEST_OBJECT_LOCK_SECS`) instead of days.
//!
//! Every file is written locked; a DELETE of a locked version fails at the
//! server; a ransomware-style mass delete and overwrite is reversed by
//! `repair undelete`; prune extends the lock of a pack a new snapshot
//! reuses, leaves a deleted file's locked version and purges it once its
//! time has passed; verify names files locked for less than promised.

use std::time::{Duration, Instant};

use lifeboat_testkit::bucket::S3Client;
use lifeboat_testkit::{data, sha256_file, Lifeboat, S3Server};

const SECS: u64 = 8;

const RUNBOOK: &str = include_str!("../../docs/DISASTER-RECOVERY.md");

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn data_keys(s3: &S3Client, bucket: &str) -> Vec<String> {
    s3.list(bucket)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("lifeboat/data/"))
        .collect()
}

#[test]
fn locked_files_survive_a_mass_delete_and_prune_keeps_the_locks_it_promised() {
    let server = S3Server::start();
    let s3 = S3Client::new(&server.endpoint);
    let plain = format!("lb-nolock-{}", std::process::id());
    server.create_bucket(&plain);
    let bucket = format!("lb-lock-{}", std::process::id());
    s3.create_locked_bucket(&bucket);
    let mut lb = Lifeboat::s3_in(&server, &bucket);
    lb.set_env("LIFEBOAT_TEST_OBJECT_LOCK_SECS", &SECS.to_string());
    let rk = lb.restore_key.display().to_string();
    let bk = lb.backup_key.display().to_string();
    let init = |repo: &str| {
        lb.run_at(
            repo,
            &[
                "init",
                "--restore-key-file",
                &rk,
                "--backup-key-file",
                &bk,
                "--object-lock-days",
                "1",
                "--object-lock-mode",
                "compliance",
            ],
        )
    };

    // A bucket without object lock is refused, naming what to do.
    let refused = init(&format!("s3://{plain}/lifeboat"));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("Object Lock enabled"),
        "{}",
        refused.stderr
    );
    let _ = std::fs::remove_file(&lb.restore_key);
    init(&lb.repo_url()).ok();

    // Night 1: every file carries retention.
    let a = lb.path("a.bin");
    data::write_mixed_stream(&a, 3 << 20, 1);
    lb.backup_command(&format!("cat '{}'", a.display()), "a.bin", &["--tag", "a"])
        .ok();
    for (key, _) in s3.list(&bucket) {
        let until = s3.retention(&bucket, &key);
        assert!(
            until.is_some_and(|u| u > now()),
            "{key} is not locked: {until:?}"
        );
    }
    let pack_a = data_keys(&s3, &bucket);
    assert!(!pack_a.is_empty());
    // Deleting a locked version fails at the server.
    let (_, version, _, _) = s3
        .versions(&bucket)
        .into_iter()
        .find(|v| v.0 == pack_a[0])
        .unwrap();
    assert_eq!(
        s3.delete_version(&bucket, &pack_a[0], &version),
        Err("AccessDenied".to_string())
    );

    // Ransomware with the store's credentials: every file deleted (plain
    // DELETEs: markers) and the config overwritten.
    std::thread::sleep(Duration::from_millis(1100));
    let before_attack = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(1100));
    let keys: Vec<String> = s3.list(&bucket).into_iter().map(|(k, _)| k).collect();
    s3.delete(&bucket, &keys);
    s3.put(&bucket, "lifeboat/config", b"{\"paid\": false}");
    let gone = lb.run(&["snapshots", "--backup-key-file", &bk]);
    assert_ne!(gone.code, 0, "{}", gone.stdout);
    // docs/DISASTER-RECOVERY.md, "The store was attacked: undelete", each
    // command verbatim (the moment filled in).
    lb.set_env("LIFEBOAT_RESTORE_KEY_FILE", &rk);
    let moment = before_attack.format("%Y-%m-%d %H:%M:%S").to_string();
    for doc in [
        "lifeboat repair undelete --as-of '2026-12-06 02:00:00'",
        "lifeboat verify --read-data",
    ] {
        assert!(RUNBOOK.contains(doc), "the runbook no longer says: {doc}");
        let args: Vec<String> = doc
            .replace("'2026-12-06 02:00:00'", "MOMENT")
            .split_whitespace()
            .skip(1)
            .map(|w| {
                if w == "MOMENT" {
                    moment.clone()
                } else {
                    w.to_string()
                }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lb.run(&args).ok();
        assert!(
            out.stdout.contains("no problems") || out.stdout.contains("0 problem"),
            "{doc}: {}",
            out.stdout
        );
    }
    let out = lb.path("a.out");
    lb.restore_item("latest", "a.bin", &out).ok();
    assert_eq!(sha256_file(&out), sha256_file(&a));

    // Night 3's data, then forgotten: prune deletes its pack (a marker);
    // the locked version stays.
    let c = lb.path("c.bin");
    data::write_mixed_stream(&c, 2 << 20, 3);
    lb.backup_command(&format!("cat '{}'", c.display()), "c.bin", &["--tag", "c"])
        .ok();
    let pack_c: Vec<String> = data_keys(&s3, &bucket)
        .into_iter()
        .filter(|k| !pack_a.contains(k))
        .collect();
    assert!(!pack_c.is_empty());
    let c_id = lb
        .snapshots()
        .into_iter()
        .find(|s| s["tags"][0] == "c")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    lb.run(&["forget", "--restore-key-file", &rk, &c_id]).ok();
    lb.run(&["prune", "--restore-key-file", &rk]).ok();
    assert!(!data_keys(&s3, &bucket).contains(&pack_c[0]));
    let kept = |key: &str| s3.versions(&bucket).iter().any(|v| v.0 == key && !v.3);
    assert!(kept(&pack_c[0]), "the deleted pack's locked version stays");

    // Past half the retention of every pack there (the one prune wrote
    // included), a new snapshot reuses A's data: prune extends their lock.
    let last_write = Instant::now();
    while last_write.elapsed() < Duration::from_secs(SECS / 2 + 1) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let packs = data_keys(&s3, &bucket);
    lb.backup_command(&format!("cat '{}'", a.display()), "a.bin", &["--tag", "a2"])
        .ok();
    let until = |keys: &[String]| -> Vec<i64> {
        keys.iter()
            .map(|k| s3.retention(&bucket, k).unwrap_or(0))
            .collect()
    };
    let before = until(&packs);
    let pruned = lb.run(&["prune", "--restore-key-file", &rk]).ok();
    let after = until(&packs);
    for ((k, b), a) in packs.iter().zip(&before).zip(&after) {
        assert!(
            a > b && *a >= now() + SECS as i64 - 2,
            "{k}: locked until {b}, after prune {a}\n{}",
            pruned.stdout
        );
    }

    // No prune for longer than the retention: verify names what is locked
    // for less than promised; prune extends it and purges the old version
    // of pack C, whose time has passed.
    std::thread::sleep(Duration::from_secs(SECS + 1));
    let v = lb.run(&["verify", "--json", "--backup-key-file", &bk]);
    assert_eq!(v.code, 4, "{}", v.stdout);
    assert!(v.stdout.contains("locked only until"), "{}", v.stdout);
    let pruned = lb.run(&["prune", "--restore-key-file", &rk]).ok();
    assert!(pruned.stdout.contains("purged"), "{}", pruned.stdout);
    assert!(!kept(&pack_c[0]), "pack C's version was purged");
    let v = lb.verify_read_data();
    assert_eq!(v.code, 0, "{}", v.stdout);
    assert_eq!(v.json()["problems"], serde_json::json!([]), "{}", v.stdout);
    let out = lb.path("a2.out");
    lb.restore_item("latest", "a.bin", &out).ok();
    assert_eq!(sha256_file(&out), sha256_file(&a));

    // An overwrite instead of a delete: a pack gets other bytes of the
    // same size, and a console's folder marker and a stray key appear.
    std::thread::sleep(Duration::from_millis(1100));
    let before_overwrite = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(1100));
    let victim = data_keys(&s3, &bucket)[0].clone();
    let size = s3
        .list(&bucket)
        .into_iter()
        .find(|(k, _)| *k == victim)
        .unwrap()
        .1;
    s3.put(&bucket, &victim, &vec![0x5a; size as usize]);
    s3.put(&bucket, "lifeboat/data/", b"");
    s3.put(&bucket, "lifeboat/data/x", b"junk");
    // Plain verify (the backup key) names it; prune, past the retention,
    // does not purge the real version underneath.
    let v = lb.run(&["verify", "--json", "--backup-key-file", &bk]);
    assert_eq!(v.code, 4, "{}\n{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("overwritten"), "{}", v.stdout);
    std::thread::sleep(Duration::from_secs(SECS + 1));
    let _ = lb.run(&["prune", "--restore-key-file", &rk]);
    let versions = s3
        .versions(&bucket)
        .into_iter()
        .filter(|v| v.0 == victim && !v.3)
        .count();
    assert_eq!(versions, 2, "the overwritten pack's real version is kept");
    let undone = lb
        .run(&[
            "repair",
            "undelete",
            "--as-of",
            &before_overwrite.to_rfc3339(),
        ])
        .ok();
    assert!(
        undone.stdout.contains("brought back 1 file"),
        "{}",
        undone.stdout
    );
    let v = lb.verify_read_data();
    assert_eq!(v.json()["problems"], serde_json::json!([]), "{}", v.stdout);
    let out = lb.path("a3.out");
    lb.restore_item("latest", "a.bin", &out).ok();
    assert_eq!(sha256_file(&out), sha256_file(&a));
}
