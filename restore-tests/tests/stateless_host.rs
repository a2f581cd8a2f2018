//! A backup host that keeps no disk (a Render Cron Job, a fresh CI
//! runner): every nightly runs with an empty cache folder and HOME, and
//! still stores only what changed, because what the increments need lives
//! in the store (MySQL row-hash records, the bucket's object list, git's
//! refs). A stale local cache, of an older snapshot, is replaced by the
//! store's copy, and what it restores is what the sources held.

use lifeboat_testkit::bucket::{self, ObjectSpec, S3Client};
use lifeboat_testkit::git::git;
use lifeboat_testkit::mariadb::TestDb;
use lifeboat_testkit::proxy::Proxy;
use lifeboat_testkit::{sha256_file, Lifeboat, S3Server};

/// GETs a backup needs for these objects (one per 8 MiB range).
fn gets_for(objects: &[ObjectSpec]) -> usize {
    objects
        .iter()
        .map(|o| (o.size.div_ceil(8 << 20)).max(1) as usize)
        .sum()
}

/// Run the next commands as a host whose disk is `home`: no
/// LIFEBOAT_CACHE_DIR, so the cache is `$HOME/.cache/lifeboat`.
fn as_host(lb: &mut Lifeboat, name: &str) {
    let home = lb.path(name);
    std::fs::create_dir_all(&home).unwrap();
    lb.set_env("HOME", home.to_str().unwrap());
    lb.set_env("LIFEBOAT_CACHE_DIR", "");
    lb.set_env("XDG_CACHE_HOME", "");
}

#[test]
fn nightlies_on_hosts_without_a_disk_add_only_what_changed_and_a_stale_cache_restores_exactly() {
    let server = S3Server::start();
    let s3 = S3Client::new(&server.endpoint);
    let proxy = Proxy::start(&server.endpoint);
    let src = format!("lb-stateless-{}", std::process::id());
    server.create_bucket(&src);
    let mut objects = bucket::generate(200, 3, 64 << 10);
    s3.put_all(&src, &objects);
    let db = TestDb::new("stateless");
    db.load_clinic(30, 4);
    let mut lb = Lifeboat::local();
    lb.init();
    lb.set_env("TEST_R2_SECRET", "testing-secret");
    // State parts of 20,000 bytes (each table's records cross several, and
    // tables share them), and chains of 3 versions, so that night 3 starts
    // a new one.
    lb.set_env("LIFEBOAT_TEST_RECORDS", "20000,3");
    let code = lb.path("code");
    std::fs::create_dir_all(&code).unwrap();
    git(&code, &["init", "--quiet", "-b", "main"]);
    std::fs::write(code.join("README"), "clinic\n").unwrap();
    git(&code, &["add", "README"]);
    git(&code, &["commit", "--quiet", "-m", "one"]);
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mysql]\nurl = \"{}\"\n\n[objects]\nendpoint = \"{}\"\nregion = \"auto\"\nbucket = \"{src}\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"${{TEST_R2_SECRET}}\"\n\n\
             [[git]]\nurl = \"{}\"\nname = \"code\"\n",
            db.url(),
            proxy.endpoint,
            code.display()
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let backup = |lb: &Lifeboat| {
        let out = lb
            .run(&[
                "--config",
                &cfg,
                "--backup-key-file",
                &bk,
                "--json",
                "backup",
            ])
            .ok();
        let added = out.json()["stats"]["added_bytes"].as_u64().expect("added");
        let snap = lb.snapshots().pop().expect("a snapshot");
        (added, snap)
    };
    let change = |night: u64, objects: &mut Vec<ObjectSpec>| {
        // 1% of appointments updated at scattered places, 1% new audit rows.
        db.sql(&format!(
            "UPDATE appointments SET status = IF(status = 'done', 'no_show', 'done'), \
             notes = CONCAT(COALESCE(notes, ''), ' n{night}') WHERE (id * 7 + {night}) % 100 = 0;
             INSERT INTO audit_log (user_id, action, entity, entity_id, details, at)
               SELECT user_id, 'view', entity, entity_id, details, at FROM audit_log WHERE id % 100 = {night};"
        ));
        // 1% of the objects get new content.
        let mut changed = Vec::new();
        for (i, o) in objects.iter_mut().enumerate() {
            if i % 100 == night as usize {
                o.seed ^= 0xBEEF + night;
                changed.push(o.clone());
            }
        }
        s3.put_all(&src, &changed);
        changed
    };

    as_host(&mut lb, "host0");
    let (first, snap) = backup(&lb);
    let facts = &snap["sources"]["mysql"]["facts"];
    assert_eq!(facts["row_hashes"]["stored_full"], facts["tables"]);
    assert_eq!(facts["row_hashes"]["stored_delta"], 0);

    for night in 1..=2u64 {
        let changed = change(night, &mut objects);
        // A new host each night: an empty HOME, no cache anywhere.
        as_host(&mut lb, &format!("host{night}"));
        proxy.reset();
        let (added, snap) = backup(&lb);
        eprintln!(
            "night {night} on an empty disk: added {added} bytes = {:.2}% of the first backup ({first})",
            100.0 * added as f64 / first as f64
        );
        assert!(
            (added as f64) <= 0.05 * first as f64,
            "night {night} added {added} of {first} bytes"
        );
        let hashes = &snap["sources"]["mysql"]["facts"]["row_hashes"];
        eprintln!("night {night}: row-hash records {hashes}");
        assert_eq!(
            hashes["from_store"],
            hashes["stored_full"].as_u64().unwrap() + hashes["stored_delta"].as_u64().unwrap(),
            "{hashes}"
        );
        assert_eq!(hashes["from_disk"], 0, "{hashes}");
        assert!(hashes["stored_delta"].as_u64().unwrap() > 0, "{hashes}");
        // Objects: only the changed ones were read; git: no ref moved, nothing stored.
        assert_eq!(proxy.object_gets(), gets_for(&changed));
        assert_eq!(
            snap["sources"]["objects"]["facts"]["carried"],
            200 - changed.len()
        );
        assert_eq!(
            snap["sources"]["git"]["facts"]["repos"]["code"]["unchanged"],
            true
        );
    }

    // Only the newest snapshot kept, and pruned: the records it builds on
    // (night 0's full versions, night 1's deltas) stay, the others' go.
    lb.run(&["forget", "--keep-last", "1", "--restore-key-file", &rk])
        .ok();
    let pruned = lb.run(&["prune", "--json", "--restore-key-file", &rk]).ok();
    assert!(
        pruned.json()["state_files_removed"].as_u64().unwrap() >= 2,
        "{}",
        pruned.stdout
    );

    // Night 3 on host 1 again, whose cache is of night 1's snapshot: the
    // stale cache is detected and the store's records are used.
    change(3, &mut objects);
    git(&code, &["commit", "--quiet", "--allow-empty", "-m", "two"]);
    as_host(&mut lb, "host1");
    let (added, snap) = backup(&lb);
    let hashes = &snap["sources"]["mysql"]["facts"]["row_hashes"];
    eprintln!("night 3 on a stale disk: added {added}, row-hash records {hashes}");
    // The rows still cost what changed; the records are whole again (the
    // night a chain restarts costs their size, 8 bytes a row).
    let records = hashes["stored_bytes"].as_u64().unwrap();
    assert!(
        (added.saturating_sub(records) as f64) <= 0.05 * first as f64,
        "stale night added {added}, {records} of it records"
    );
    assert!(hashes["from_store"].as_u64().unwrap() > 0, "{hashes}");
    assert_eq!(
        hashes["stored_delta"], 0,
        "a chain of 3 starts again: {hashes}"
    );
    assert_eq!(
        snap["sources"]["git"]["facts"]["repos"]["code"]["unchanged"],
        false
    );

    // What the last snapshot restores is what the sources hold.
    let restore = |source: &str, to: &[&str]| {
        let mut args = vec![
            "--config",
            &cfg,
            "--restore-key-file",
            &rk,
            "restore",
            "latest",
            "--source",
            source,
        ];
        args.extend_from_slice(to);
        lb.run(&args).ok();
    };
    let copy = TestDb::unborn("statelesscopy");
    restore("mysql", &["--target", &copy.url()]);
    assert_eq!(copy.fingerprint(), db.fingerprint());
    let files = lb.path("files");
    restore("objects", &["--to", files.to_str().unwrap()]);
    for o in &objects {
        assert_eq!(sha256_file(&files.join(&o.key)), o.sha256(), "{}", o.key);
    }
    let code_to = lb.path("code-restored");
    restore("git", &["--to", code_to.to_str().unwrap()]);
    assert_eq!(
        git(&code_to, &["rev-parse", "HEAD"]),
        git(&code, &["rev-parse", "HEAD"])
    );
    lb.verify_read_data().ok();
}
